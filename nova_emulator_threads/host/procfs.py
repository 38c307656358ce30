#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.


"""The threads of a QEMU process, as ``/proc`` shows them.

This is what ``ps -T -p PID`` plus ``taskset -a -c -p PID`` show an
operator, read from ``/proc/<pid>/task/*/{comm,status}``:
each thread's name (QEMU names its threads: ``CPU 0/KVM``,
``IO iothread1``, ``vnc_worker``, ...) and the CPUs it may run on
(``Cpus_allowed_list``, which the kernel keeps within the thread's cgroup
cpuset). It also finds, in one pass over ``/proc``:

* the QEMU process of each libvirt domain, by the ``-uuid`` argument
  libvirt always passes (an exact ``pgrep -f instance-...``: a domain
  name can be a prefix of another's);
* the ``vhost-<qemu pid>`` kernel threads that do virtio-net work for a
  guest. Kernels before 6.4 run them as separate kernel threads; newer
  kernels run them as threads of the QEMU process itself, so they also
  show up among its tasks, under the same name.

It also reads what the scheduler accounted to each thread, for
``measure``: ``/proc/<pid>/task/<tid>/schedstat`` (the nanoseconds the
thread ran and the nanoseconds it waited runnable on a run queue) and the
fields of ``.../stat`` that tell one thread from a later one that reuses
its id (its start time) and where it last ran.

Processes and threads come and go while we read: one that is gone by
the time we get to it is left out, never reported as an error.
"""

import dataclasses
import errno
import os
import re
from collections.abc import Mapping

from nova_emulator_threads import exception
from nova_emulator_threads.host import cpulist

#: The comm of a vhost worker: ``vhost-`` and the pid of its QEMU process.
VHOST_COMM = re.compile(r'^vhost-(\d+)$')

_GONE = (errno.ENOENT, errno.ESRCH)


@dataclasses.dataclass(frozen=True, slots=True)
class Thread:
    """One thread (or kernel thread) and where it may run."""

    tid: int
    #: ``comm``: at most 15 characters, as the kernel truncates it.
    name: str
    #: ``Cpus_allowed_list`` of its status.
    cpus: frozenset[int]


@dataclasses.dataclass(frozen=True, slots=True)
class SchedStat:
    """What the scheduler has accounted to one thread since it started."""

    #: nanoseconds it ran on a CPU (``schedstat`` field 1).
    ran_ns: int
    #: nanoseconds it waited on a run queue, runnable but not running
    #: (``schedstat`` field 2, the kernel's ``run_delay``).
    waited_ns: int
    #: when it started, in clock ticks after boot (``stat`` field 22).
    #: With the thread id it names one thread: ids are reused.
    start_ticks: int
    #: the CPU it last ran on (``stat`` field 39, ``processor``).
    last_cpu: int


@dataclasses.dataclass(frozen=True)
class ProcessTable:
    """What one pass over ``/proc`` found."""

    #: libvirt domain UUID (lower case) -> pid of its QEMU process.
    qemu_pids: Mapping[str, int]
    #: QEMU pid -> its vhost workers that are separate kernel threads.
    vhost_threads: Mapping[int, tuple[Thread, ...]]


def _read(path: str) -> bytes | None:
    """A file's bytes, or None when its process or thread is gone."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno in _GONE:
            return None
        raise exception.HostInspectionFailed(
            source=path, reason=exc.strerror or str(exc)) from exc


def _numeric_entries(path: str) -> list[int]:
    try:
        names = os.listdir(path)
    except OSError as exc:
        if exc.errno in _GONE:
            return []
        raise exception.HostInspectionFailed(
            source=path, reason=exc.strerror or str(exc)) from exc
    return sorted(int(name) for name in names if name.isdigit())


def _cpus_allowed(status: bytes, path: str) -> frozenset[int]:
    for line in status.decode('utf-8', 'replace').splitlines():
        key, _, value = line.partition(':')
        if key == 'Cpus_allowed_list':
            return cpulist.parse_cpu_list(value, path)
    raise exception.HostInspectionFailed(
        source=path, reason='it has no Cpus_allowed_list line')


def read_thread(task_dir: str, tid: int) -> Thread | None:
    """Read one thread (``/proc/<pid>/task/<tid>`` or ``/proc/<pid>``).

    :returns: the thread, or None when it has exited meanwhile
    """
    comm = _read(os.path.join(task_dir, 'comm'))
    status_path = os.path.join(task_dir, 'status')
    status = _read(status_path)
    if comm is None or status is None:
        return None
    return Thread(tid=tid,
                  name=comm.decode('utf-8', 'replace').rstrip('\n'),
                  cpus=_cpus_allowed(status, status_path))


def read_schedstat(task_dir: str) -> SchedStat | None:
    """Read what the scheduler accounted to one thread.

    :param task_dir: ``/proc/<pid>/task/<tid>`` (or ``/proc/<pid>``)
    :returns: the figures, or None when the thread has exited meanwhile
    :raises: HostInspectionFailed if a file is not in the kernel's format
        (``schedstat`` needs ``CONFIG_SCHED_INFO``, which every
        distribution kernel has)
    """
    schedstat_path = os.path.join(task_dir, 'schedstat')
    schedstat = _read(schedstat_path)
    stat_path = os.path.join(task_dir, 'stat')
    stat = _read(stat_path)
    if schedstat is None or stat is None:
        return None
    words = schedstat.split()
    if len(words) < 2 or not all(w.isdigit() for w in words[:2]):
        raise exception.HostInspectionFailed(
            source=schedstat_path,
            reason='%r is not "<ran ns> <waited ns> <timeslices>"'
                   % schedstat.decode('ascii', 'replace').strip())
    # The comm (field 2) is in parentheses and may hold spaces and
    # parentheses itself: the fields after it follow the last ')'.
    fields = stat[stat.rfind(b')') + 1:].split()
    # fields[0] is field 3 (state): field n is fields[n - 3].
    if len(fields) < 37 or not (fields[19].isdigit() and
                                fields[36].isdigit()):
        raise exception.HostInspectionFailed(
            source=stat_path, reason='it has no start time and processor '
                                     'fields (22 and 39)')
    return SchedStat(ran_ns=int(words[0]), waited_ns=int(words[1]),
                     start_ticks=int(fields[19]), last_cpu=int(fields[36]))


def read_uptime(proc_root: str = '/proc') -> float:
    """Seconds since boot (``/proc/uptime``): the clock of start times.

    :raises: HostInspectionFailed if it cannot be read
    """
    path = os.path.join(proc_root, 'uptime')
    text = _read(path)
    try:
        return float((text or b'').split()[0])
    except (IndexError, ValueError):
        raise exception.HostInspectionFailed(
            source=path, reason='it does not start with the seconds since '
                                'boot') from None


def process_threads(pid: int, proc_root: str = '/proc',
                    ) -> tuple[Thread, ...]:
    """All threads of a process, by thread id.

    :returns: the threads; empty when the process is gone
    """
    task_root = os.path.join(proc_root, str(pid), 'task')
    threads = []
    for tid in _numeric_entries(task_root):
        thread = read_thread(os.path.join(task_root, str(tid)), tid)
        if thread is not None:
            threads.append(thread)
    return tuple(threads)


def _uuid_argument(cmdline: bytes) -> str | None:
    args = cmdline.split(b'\0')
    for index, arg in enumerate(args[:-1]):
        if arg == b'-uuid':
            return args[index + 1].decode('ascii', 'replace').lower()
    return None


def scan_processes(proc_root: str = '/proc') -> ProcessTable:
    """Find QEMU processes by domain UUID, and vhost kernel threads.

    :param proc_root: where procfs is mounted (a recorded tree in tests)
    :raises: HostInspectionFailed if ``proc_root`` cannot be listed
    """
    if not os.path.isdir(proc_root):
        raise exception.HostInspectionFailed(
            source=proc_root, reason='it is not a directory')
    qemu_pids: dict[str, int] = {}
    vhost: dict[int, list[Thread]] = {}
    for pid in _numeric_entries(proc_root):
        process_dir = os.path.join(proc_root, str(pid))
        comm = _read(os.path.join(process_dir, 'comm'))
        if comm is None:
            continue
        match = VHOST_COMM.match(comm.decode('utf-8', 'replace').strip())
        if match:
            thread = read_thread(process_dir, pid)
            if thread is not None:
                vhost.setdefault(int(match.group(1)), []).append(thread)
            continue
        cmdline = _read(os.path.join(process_dir, 'cmdline'))
        uuid = _uuid_argument(cmdline) if cmdline else None
        if uuid is not None:
            qemu_pids[uuid] = pid
    return ProcessTable(
        qemu_pids=qemu_pids,
        vhost_threads={owner: tuple(threads)
                       for owner, threads in vhost.items()})
