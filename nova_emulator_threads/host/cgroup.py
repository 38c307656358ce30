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
