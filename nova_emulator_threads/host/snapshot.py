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


"""One read of a host: its CPUs, the machine cpuset and every guest.

``take_snapshot`` puts the sources together (libvirt for what guests were
told, ``/proc`` for where their threads may run, ``/sys`` and the cgroup
tree for the host). The audit and the ``pin`` checks work on the result
only, so they are pure and are tested on recorded trees.
"""

import dataclasses
import typing

from nova_emulator_threads.host import cgroup
from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.host import procfs
from nova_emulator_threads.host import sysfs


@dataclasses.dataclass(frozen=True)
class Guest:
    """A guest and its QEMU process."""

    domain: libvirt_domains.Domain
    #: pid of its QEMU process; None when it was not found in ``/proc``
    #: (another host's daemon, or a driver without processes).
    pid: int | None = None
    #: the threads of the QEMU process.
    threads: tuple[procfs.Thread, ...] = ()
    #: its ``vhost-<pid>`` workers that are separate kernel threads.
    vhost_threads: tuple[procfs.Thread, ...] = ()

    @property
    def name(self) -> str:
        return self.domain.name


@dataclasses.dataclass(frozen=True)
class HostSnapshot:
    cpus: sysfs.HostCPUs
    machine_cpuset: cgroup.MachineCpuset | None
    guests: tuple[Guest, ...]

    def guest(self, name: str) -> Guest | None:
        for guest in self.guests:
            if guest.name == name or guest.domain.uuid == name.lower():
                return guest
        return None


def attach_processes(domains: typing.Iterable[libvirt_domains.Domain],
                     proc_root: str = '/proc') -> tuple[Guest, ...]:
    """Find each running domain's QEMU process and read its threads."""
    table = procfs.scan_processes(proc_root)
    guests = []
    for domain in domains:
        pid = table.qemu_pids.get(domain.uuid) if domain.active else None
        if pid is None:
            guests.append(Guest(domain=domain))
            continue
        guests.append(Guest(
            domain=domain, pid=pid,
            threads=procfs.process_threads(pid, proc_root),
            vhost_threads=table.vhost_threads.get(pid, ())))
    return tuple(guests)


def take_snapshot(conn: typing.Any, proc_root: str = '/proc',
                  sys_root: str = '/sys',
                  extra: typing.Iterable[libvirt_domains.Domain] = (),
                  ) -> HostSnapshot:
    """Read the host and every running guest of a libvirt connection.

    :param conn: a libvirt connection
    :param proc_root: where procfs is mounted
    :param sys_root: where sysfs is mounted
    :param extra: domains to include although they are not running (the
        one ``pin --config`` changes)
    :raises: HostInspectionFailed, InvalidDomainXML
    """
    cpus = sysfs.read_host_cpus(sys_root, proc_root)
    machine = cgroup.read_machine_cpuset(sys_root)
    domains = list(libvirt_domains.list_domains(conn))
    names = {d.name for d in domains}
    domains += [d for d in extra if d.name not in names]
    return HostSnapshot(cpus=cpus, machine_cpuset=machine,
                        guests=attach_processes(domains, proc_root))
