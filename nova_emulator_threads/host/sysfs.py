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


"""The host's CPUs: which are online, which are isolated from the scheduler,
and which are hyperthreads of one core.

Isolation matters to emulator threads because the scheduler does not
balance load across CPUs removed from its domains (``isolcpus=``, or
``isolcpus=domain,...``): threads allowed on several isolated CPUs all
stay on the first one they land on, the lowest, instead of spreading
(the kernel's admin-guide/kernel-parameters: isolated CPUs are removed
from the general SMP balancing and scheduling algorithms).

Sources, in order of trust:

* ``/sys/devices/system/cpu/online`` and ``.../isolated``: what the
  running kernel applies;
* ``isolcpus=`` and ``nohz_full=`` in ``/proc/cmdline``: what the
  administrator asked for. ``isolated`` is used when the kernel has it
  (every kernel Nova supports); the command line is reported alongside
  and is the fallback.

SMT siblings matter because two hyperthreads of a core share its
execution units and caches: emulator threads on the sibling of a vCPU's
pCPU slow that vCPU down. ``.../cpuN/topology/thread_siblings_list``
names the threads of CPU N's core.
"""

import dataclasses
import os

from nova_emulator_threads import exception
from nova_emulator_threads.host import cpulist

#: ``isolcpus=`` flags (``Documentation/admin-guide/kernel-parameters``).
#: ``domain`` (also the meaning when no flag is given) removes the CPUs
#: from scheduler load balancing; ``nohz`` and ``managed_irq`` alone do not.
ISOLCPUS_FLAGS = ('nohz', 'domain', 'managed_irq')


@dataclasses.dataclass(frozen=True)
class HostCPUs:
    """CPU state of the host."""

    online: frozenset[int]
    #: CPUs the scheduler does not balance across (``isolated``, or the
    #: command line's ``isolcpus=`` when that file is missing).
    isolated: frozenset[int]
    #: CPUs of ``isolcpus=`` on the command line, whatever their flags.
    isolcpus: frozenset[int] = frozenset()
    #: The flags given with ``isolcpus=`` (``domain`` when none were).
    isolcpus_flags: tuple[str, ...] = ()
    #: CPUs of ``nohz_full=`` on the command line.
    nohz_full: frozenset[int] = frozenset()
    #: The cores with more than one online thread, each as its threads
    #: (``thread_siblings_list``); empty without SMT, or when the kernel
    #: does not say.
    smt_cores: tuple[frozenset[int], ...] = ()

    def siblings(self, cpu: int) -> frozenset[int]:
        """The other online threads of ``cpu``'s core."""
        for core in self.smt_cores:
            if cpu in core:
                return core - {cpu}
        return frozenset()


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise exception.HostInspectionFailed(
            source=path, reason=exc.strerror or str(exc)) from exc


def _cmdline_parameters(cmdline: str) -> list[tuple[str, str]]:
    params = []
    for word in cmdline.split():
        # Everything after a bare "--" goes to init, not to the kernel.
        if word == '--':
            break
        key, sep, value = word.partition('=')
        if sep:
            params.append((key, value))
    return params


def parse_isolcpus(value: str, source: str, last: int | None = None,
                   ) -> tuple[frozenset[int], tuple[str, ...]]:
    """Split an ``isolcpus=`` value into its CPUs and its flags.

    The syntax is ``isolcpus=[flag,...,]<cpu-list>``: leading words that
    are flags, then the CPU list.
    """
    flags: list[str] = []
    words = value.split(',')
    while words and words[0] in ISOLCPUS_FLAGS:
        flags.append(words.pop(0))
    cpus = cpulist.parse_cpu_list(','.join(words), source, last)
    return cpus, tuple(flags) or ('domain',)


def read_host_cpus(sys_root: str = '/sys', proc_root: str = '/proc',
                   ) -> HostCPUs:
    """Read the host's online and isolated CPUs.

    :param sys_root: where sysfs is mounted (a recorded tree in tests)
    :param proc_root: where procfs is mounted, for ``cmdline``
    :raises: HostInspectionFailed if the online CPUs cannot be read or a
        CPU list is malformed
    """
    cpu_dir = os.path.join(sys_root, 'devices', 'system', 'cpu')
    online_path = os.path.join(cpu_dir, 'online')
    online_text = _read_text(online_path)
    if online_text is None:
        raise exception.HostInspectionFailed(
            source=online_path, reason='the file does not exist')
    online = cpulist.parse_cpu_list(online_text, online_path)
    if not online:
        raise exception.HostInspectionFailed(
            source=online_path, reason='it lists no CPU')
    last = max(online)

    cmdline_path = os.path.join(proc_root, 'cmdline')
    isolcpus: frozenset[int] = frozenset()
    flags: tuple[str, ...] = ()
    nohz_full: frozenset[int] = frozenset()
    for key, value in _cmdline_parameters(_read_text(cmdline_path) or ''):
        source = '%s (%s=)' % (cmdline_path, key)
        if key == 'isolcpus':
            cpus, new_flags = parse_isolcpus(value, source, last)
            isolcpus |= cpus
            flags += tuple(f for f in new_flags if f not in flags)
        elif key == 'nohz_full':
            nohz_full |= cpulist.parse_cpu_list(value, source, last)

    isolated_path = os.path.join(cpu_dir, 'isolated')
    isolated_text = _read_text(isolated_path)
    if isolated_text is not None:
        isolated = cpulist.parse_cpu_list(isolated_text, isolated_path)
    else:
        isolated = isolcpus if 'domain' in flags else frozenset()
    return HostCPUs(online=online, isolated=isolated, isolcpus=isolcpus,
                    isolcpus_flags=flags, nohz_full=nohz_full,
                    smt_cores=read_smt_cores(cpu_dir, online))


def read_smt_cores(cpu_dir: str, online: frozenset[int],
                   ) -> tuple[frozenset[int], ...]:
    """The cores with several online threads, in order of their lowest.

    :param cpu_dir: ``/sys/devices/system/cpu``
    :raises: HostInspectionFailed for a malformed list
    """
    cores: dict[frozenset[int], None] = {}
    last = max(online)
    for cpu in sorted(online):
        path = os.path.join(cpu_dir, 'cpu%d' % cpu, 'topology',
                            'thread_siblings_list')
        text = _read_text(path)
        if text is None:
            continue
        core = cpulist.parse_cpu_list(text, path, last) & online
        if len(core) > 1:
            cores.setdefault(core)
    return tuple(cores)


def read_cpu_nodes(sys_root: str = '/sys') -> dict[int, int]:
    """The host's CPU -> NUMA node (``devices/system/node/node*/cpulist``).

    :param sys_root: where sysfs is mounted (a recorded tree in tests)
    :raises: HostInspectionFailed if a CPU list is malformed
    :returns: every CPU of a node; empty when the kernel has no NUMA
        nodes directory
    """
    node_dir = os.path.join(sys_root, 'devices', 'system', 'node')
    try:
        names = os.listdir(node_dir)
    except OSError:
        return {}
    nodes: dict[int, int] = {}
    for name in names:
        number = name[len('node'):]
        if not name.startswith('node') or not number.isdigit():
            continue
        path = os.path.join(node_dir, name, 'cpulist')
        text = _read_text(path)
        if text is None:
            continue
        for cpu in cpulist.parse_cpu_list(text, path):
            nodes[cpu] = int(number)
    return nodes
