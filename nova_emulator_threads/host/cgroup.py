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


"""The cgroup cpuset that confines every guest: ``machine.slice``.

libvirt starts each QEMU process in a cgroup below the machine
partition: ``machine.slice`` under systemd, ``machine`` without it
(libvirt's cgroups documentation: the default partition is
``/machine``). The cpuset of that partition bounds every guest thread whatever
``<vcpupin>`` and ``<emulatorpin>`` say: the kernel keeps a thread's
affinity within its cgroup's effective CPUs, and libvirt cannot pin a
thread to a CPU outside them. An emulator set the partition does not
allow is therefore not a placement at all.

Both hierarchies are read: cgroup v2 (``cpuset.cpus.effective`` in the
unified hierarchy) and v1 (``cpuset.effective_cpus`` in the ``cpuset``
controller's hierarchy, which hybrid hosts still use). Mount points are
the conventional ones below ``/sys/fs/cgroup``.

``read_thread_cpu_bandwidth`` reads the CFS bandwidth limit of the
cgroup a thread runs in: for a guest's emulator threads, what libvirt
wrote from ``<emulator_period>``/``<emulator_quota>`` (v1
``cpu.cfs_quota_us``, v2 ``cpu.max``).
"""

import dataclasses
import os

from nova_emulator_threads import exception
from nova_emulator_threads.host import cpulist

#: Machine partitions libvirt uses, in the order we look for them.
PARTITIONS = ('machine.slice', 'machine')


@dataclasses.dataclass(frozen=True)
class MachineCpuset:
    """The cpuset of libvirt's machine partition."""

    #: the cgroup directory it was read from.
    path: str
    #: 1 or 2.
    version: int
    #: CPUs guests may use (the effective set: the configured one
    #: narrowed by the parents, or inherited when none is configured).
    cpus: frozenset[int]
    #: CPUs configured on the partition itself; None when it inherits.
    configured: frozenset[int] | None
    #: v1 ``cpuset.cpu_exclusive`` is set, or the v2 partition type is
    #: ``root`` or ``isolated``: no sibling cgroup may use these CPUs.
    exclusive: bool = False


def _read(path: str) -> str | None:
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise exception.HostInspectionFailed(
            source=path, reason=exc.strerror or str(exc)) from exc


def _cpus(path: str) -> frozenset[int] | None:
    text = _read(path)
    if text is None or not text:
        return None
    return cpulist.parse_cpu_list(text, path)


def _v1(directory: str) -> MachineCpuset | None:
    effective = _cpus(os.path.join(directory, 'cpuset.effective_cpus'))
    configured = _cpus(os.path.join(directory, 'cpuset.cpus'))
    if effective is None:
        # Kernels before 3.16 have no effective_cpus: there, cpus is both.
        effective = configured
    if effective is None:
        return None
    exclusive = _read(os.path.join(directory, 'cpuset.cpu_exclusive'))
    return MachineCpuset(path=directory, version=1, cpus=effective,
                         configured=configured, exclusive=exclusive == '1')


def _v2(directory: str) -> MachineCpuset | None:
    effective = _cpus(os.path.join(directory, 'cpuset.cpus.effective'))
    if effective is None:
        # The cpuset controller is not enabled for this cgroup.
        return None
    configured = _cpus(os.path.join(directory, 'cpuset.cpus'))
    partition = _read(os.path.join(directory, 'cpuset.cpus.partition'))
    return MachineCpuset(
        path=directory, version=2, cpus=effective, configured=configured,
        exclusive=(partition or '').split(' ')[0] in ('root', 'isolated'))


def read_machine_cpuset(sys_root: str = '/sys') -> MachineCpuset | None:
    """Read the cpuset of libvirt's machine partition.

    :param sys_root: where sysfs is mounted (a recorded tree in tests)
    :raises: HostInspectionFailed if a file exists but cannot be read or
        parsed
    :returns: the cpuset, or None when there is no machine partition
        with a cpuset (no guest started yet, or the cpuset controller is
        not in use): then guests are bounded by the online CPUs only
    """
    cgroup_root = os.path.join(sys_root, 'fs', 'cgroup')
    v1_root = os.path.join(cgroup_root, 'cpuset')
    # A hybrid host has a unified hierarchy too, but if the cpuset
    # controller is mounted as v1 that is where it is enforced.
    if os.path.isfile(os.path.join(v1_root, 'cpuset.cpus')):
        for partition in PARTITIONS:
            found = _v1(os.path.join(v1_root, partition))
            if found is not None:
                return found
        return None
    if os.path.isfile(os.path.join(cgroup_root, 'cgroup.controllers')):
        for partition in PARTITIONS:
            found = _v2(os.path.join(cgroup_root, partition))
            if found is not None:
                return found
    return None


# -- CFS bandwidth of a thread's cgroup --------------------------------------


@dataclasses.dataclass(frozen=True)
class CPUBandwidth:
    """The CFS bandwidth limit of a cgroup (``<emulator_quota>`` lands in
    the guest's ``emulator`` cgroup).
    """

    #: the cgroup directory it was read from.
    path: str
    #: 1 or 2.
    version: int
    #: microseconds per period.
    period: int
    #: microseconds the cgroup may run per period; None: no limit (v1
    #: ``-1``, v2 ``max``).
    quota: int | None


def _v1_bandwidth(directory: str) -> CPUBandwidth | None:
    quota_path = os.path.join(directory, 'cpu.cfs_quota_us')
    quota = _read(quota_path)
    period = _read(os.path.join(directory, 'cpu.cfs_period_us'))
    if quota is None or period is None:
        return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError as exc:
        raise exception.HostInspectionFailed(
            source=directory,
            reason='cpu.cfs_quota_us=%r and cpu.cfs_period_us=%r are not '
                   'integers' % (quota, period)) from exc
    return CPUBandwidth(path=directory, version=1, period=period_us,
                        quota=quota_us if quota_us >= 0 else None)


def _v2_bandwidth(directory: str) -> CPUBandwidth | None:
    path = os.path.join(directory, 'cpu.max')
    text = _read(path)
    if text is None:
        return None
    fields = text.split()
    if (len(fields) != 2 or not fields[1].isdigit() or
            not (fields[0] == 'max' or fields[0].isdigit())):
        raise exception.HostInspectionFailed(
            source=path, reason='%r is not "QUOTA PERIOD" (QUOTA a number '
                                'of microseconds or max)' % text)
    return CPUBandwidth(
        path=directory, version=2, period=int(fields[1]),
        quota=None if fields[0] == 'max' else int(fields[0]))


def read_thread_cpu_bandwidth(pid: int, tid: int | None = None,
                              proc_root: str = '/proc',
                              sys_root: str = '/sys') -> CPUBandwidth | None:
    """The CFS bandwidth of the cgroup a thread runs in.

    For a QEMU guest's main thread that is libvirt's ``emulator`` cgroup,
    which carries ``<emulator_period>``/``<emulator_quota>``. The thread's
    ``cgroup`` file names the cgroup: under v1 the hierarchy of the
    ``cpu`` controller (mounted as ``cpu`` or ``cpu,cpuacct``), where the
    limit is ``cpu.cfs_quota_us``/``cpu.cfs_period_us``; under v2 the
    unified hierarchy, where it is ``cpu.max``.

    :param pid: the process
    :param tid: the thread (default: the process's main thread)
    :raises: HostInspectionFailed if a file exists but cannot be read or
        parsed
    :returns: the limit, or None when the thread or its ``cpu`` cgroup
        cannot be found
    """
    task = os.path.join(proc_root, str(pid))
    if tid is not None:
        task = os.path.join(task, 'task', str(tid))
    text = _read(os.path.join(task, 'cgroup'))
    if text is None:
        return None
    cgroup_root = os.path.join(sys_root, 'fs', 'cgroup')
    unified = None
    for line in text.splitlines():
        number, _, rest = line.partition(':')
        controllers, _, path = rest.partition(':')
        relative = path.lstrip('/')
        if number == '0' and not controllers:
            unified = relative
        elif 'cpu' in controllers.split(','):
            # A v1 cpu controller is where the limit is enforced, even on
            # a hybrid host that has a unified hierarchy too.
            for mount in (controllers, 'cpu'):
                found = _v1_bandwidth(os.path.join(cgroup_root, mount,
                                                   relative))
                if found is not None:
                    return found
            return None
    if unified is None:
        return None
    for root in (cgroup_root, os.path.join(cgroup_root, 'unified')):
        found = _v2_bandwidth(os.path.join(root, unified))
        if found is not None:
            return found
    return None
