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


"""Recorded hosts: ``/proc`` and ``/sys`` trees built in a temporary
directory, and two recorded guests (``chapter_1d``, ``chapter_09``): the
examples of the chapter "Using virsh emulatorpin in virtual environments
with NFV" of Red Hat OpenStack Platform's NFV guide, with their thread
ids, pins and affinities as ``ps -T`` and ``taskset`` showed them there.

The trees hold exactly the files the ``host`` modules read, with the
kernel's formats: ``/proc/<pid>/{comm,cmdline,status}``,
``/proc/<pid>/task/<tid>/{comm,status,schedstat,stat}``, ``/proc/cmdline``,
``/proc/uptime``, ``/sys/devices/system/cpu/{online,isolated}``,
``/sys/devices/system/cpu/cpuN/topology/thread_siblings_list`` and the
cgroup cpuset files of the machine partition.
"""

import os
import shutil

import fixtures
from lxml import etree

from nova_emulator_threads import cpuset
from nova_emulator_threads.host import cgroup
from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.host import snapshot
from nova_emulator_threads.host import sysfs

NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'


def _write(path: str, text: str | bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = 'wb' if isinstance(text, bytes) else 'w'
    with open(path, mode) as handle:
        handle.write(text)


def _status(name: str, pid: int, tgid: int, cpus: frozenset[int]) -> str:
    # The lines around Cpus_allowed_list are what a 6.x kernel writes;
    # only that one is read, the others make sure it is found among them.
    mask = sum(1 << cpu for cpu in cpus)
    return ('Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\n'
            'Pid:\t%d\nThreads:\t1\nCpus_allowed:\t%x\n'
            'Cpus_allowed_list:\t%s\nMems_allowed_list:\t0\n'
            'voluntary_ctxt_switches:\t10\n'
            % (name, tgid, pid, mask, cpuset.format_cpu_spec(cpus)))


def _stat(tid: int, comm: str, start_ticks: int, last_cpu: int) -> str:
    # Fields 3 to 52 of a 6.x kernel's stat line; only 22 (starttime) and
    # 39 (processor) are read. A comm with spaces and a ')' checks that
    # the fields are found after the last parenthesis.
    fields = ['0'] * 50
    fields[0] = 'S'
    fields[22 - 3] = str(start_ticks)
    fields[39 - 3] = str(last_cpu)
    return '%d (%s) %s\n' % (tid, comm, ' '.join(fields))


#: Start time of recorded threads: 1 s after boot, in 100 Hz ticks.
START_TICKS = 100
#: ``/proc/uptime`` of a recorded host until a test moves it on.
UPTIME = 1000.0


class HostTree(fixtures.Fixture):
    """A host's /proc and /sys, built file by file."""

    def _setUp(self) -> None:
        root = self.useFixture(fixtures.TempDir()).path
        self.proc_root = os.path.join(root, 'proc')
        self.sys_root = os.path.join(root, 'sys')
        os.makedirs(self.proc_root)
        os.makedirs(self.sys_root)
        self.set_cmdline('BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet')
        self.set_uptime(UPTIME)
        self._comms: dict[int, str] = {}

    def set_uptime(self, seconds: float) -> None:
        self.uptime = seconds
        _write(os.path.join(self.proc_root, 'uptime'),
               '%.2f %.2f\n' % (seconds, seconds * 1.5))

    def _task_dirs(self, pid: int, tid: int) -> list[str]:
        process = os.path.join(self.proc_root, str(pid))
        task = os.path.join(process, 'task', str(tid))
        return [task, process] if tid == pid else [task]

    def set_sched(self, pid: int, tid: int, ran_ns: int, waited_ns: int = 0,
                  start_ticks: int = START_TICKS, last_cpu: int = 0) -> None:
        """What the scheduler accounted to a thread (schedstat, stat)."""
        comm = self._comms[tid]
        for task in self._task_dirs(pid, tid):
            _write(os.path.join(task, 'schedstat'),
                   '%d %d %d\n' % (ran_ns, waited_ns, ran_ns // 1000000))
            _write(os.path.join(task, 'stat'),
                   _stat(tid, comm, start_ticks, last_cpu))

    def add_thread(self, pid: int, tid: int, comm: str, cpus: str,
                   start_ticks: int = START_TICKS) -> None:
        """A thread of an existing process (started ``start_ticks``)."""
        task = os.path.join(self.proc_root, str(pid), 'task', str(tid))
        _write(os.path.join(task, 'comm'), comm + '\n')
        _write(os.path.join(task, 'status'), _status(
            comm, tid, pid, cpuset.parse_cpu_spec(cpus)))
        self._comms[tid] = comm
        self.set_sched(pid, tid, 0, start_ticks=start_ticks)

    def remove_thread(self, pid: int, tid: int) -> None:
        """The thread exits (the whole process, for its main thread)."""
        for task in self._task_dirs(pid, tid):
            shutil.rmtree(task)

    def set_cmdline(self, cmdline: str) -> None:
        _write(os.path.join(self.proc_root, 'cmdline'), cmdline + '\n')

    def set_cpus(self, online: str, isolated: str | None = '') -> None:
        """Write ``online`` and ``isolated`` (None: no isolated file)."""
        cpu_dir = os.path.join(self.sys_root, 'devices', 'system', 'cpu')
        _write(os.path.join(cpu_dir, 'online'), online + '\n')
        if isolated is not None:
            _write(os.path.join(cpu_dir, 'isolated'), isolated + '\n')

    def set_smt_cores(self, cores: list[str]) -> None:
        """Write each core's ``thread_siblings_list``.

        ``cores`` as the kernel writes them, e.g. ``['0,20', '1,21']``;
        the file is written for every thread of the core.
        """
        cpu_dir = os.path.join(self.sys_root, 'devices', 'system', 'cpu')
        for core in cores:
            for cpu in cpuset.parse_cpu_spec(core):
                _write(os.path.join(cpu_dir, 'cpu%d' % cpu, 'topology',
                                    'thread_siblings_list'), core + '\n')

    def add_process(self, pid: int, argv: list[str],
                    threads: list[tuple[int, str, str]]) -> None:
        """A process and its threads.

        ``threads`` are (tid, comm, Cpus_allowed_list), the first being
        the main thread (tid == pid).
        """
        process = os.path.join(self.proc_root, str(pid))
        _write(os.path.join(process, 'cmdline'),
               b''.join(arg.encode() + b'\0' for arg in argv))
        main_comm, main_cpus = threads[0][1], threads[0][2]
        _write(os.path.join(process, 'comm'), main_comm + '\n')
        _write(os.path.join(process, 'status'), _status(
            main_comm, pid, pid, cpuset.parse_cpu_spec(main_cpus)))
        for tid, comm, cpus in threads:
            self.add_thread(pid, tid, comm, cpus)

    def add_kernel_thread(self, pid: int, comm: str, cpus: str) -> None:
        """A kernel thread: its own process, with an empty cmdline."""
        self.add_process(pid, [], [(pid, comm, cpus)])
        _write(os.path.join(self.proc_root, str(pid), 'cmdline'), b'')

    def set_machine_cpuset(self, cpus: str, version: int = 1,
                           partition: str = 'machine.slice',
                           exclusive: bool = False,
                           configured: str | None = None) -> str:
        """The machine partition's cpuset; returns its directory."""
        cgroup = os.path.join(self.sys_root, 'fs', 'cgroup')
        if version == 1:
            top = os.path.join(cgroup, 'cpuset')
            _write(os.path.join(top, 'cpuset.cpus'), cpus + '\n')
            path = os.path.join(top, partition)
            _write(os.path.join(path, 'cpuset.cpus'),
                   (cpus if configured is None else configured) + '\n')
            _write(os.path.join(path, 'cpuset.effective_cpus'), cpus + '\n')
            _write(os.path.join(path, 'cpuset.cpu_exclusive'),
                   '1\n' if exclusive else '0\n')
        else:
            _write(os.path.join(cgroup, 'cgroup.controllers'),
                   'cpuset cpu io memory pids\n')
            path = os.path.join(cgroup, partition)
            _write(os.path.join(path, 'cpuset.cpus'),
                   (configured or '') + '\n')
            _write(os.path.join(path, 'cpuset.cpus.effective'), cpus + '\n')
            _write(os.path.join(path, 'cpuset.cpus.partition'),
                   'root\n' if exclusive else 'member\n')
        return path


def qemu_argv(name: str, uuid: str) -> list[str]:
    """The start of the command line libvirt gives QEMU."""
    return ['/usr/libexec/qemu-kvm', '-name', 'guest=%s,debug-threads=on'
            % name, '-S', '-machine', 'pc-q35-rhel7.6.0', '-uuid', uuid,
            '-no-user-config', '-nodefaults']


# ---------------------------------------------------------------------------
# Domain XML
# ---------------------------------------------------------------------------


def domain_xml(name: str, uuid: str, vcpupins: dict[int, str],
               emulatorpin: str | None = None,
               iothreadpins: dict[int, str] | None = None,
               nova: dict[str, object] | None = None,
               domain_type: str = 'kvm', vcpu_cpuset: str | None = None,
               ) -> str:
    """A domain document with the elements the audit reads.

    :param nova: ``{'name', 'flavor', 'vcpus', 'memory', 'extra_specs',
        'image_props'}`` for a Nova guest; ``extra_specs`` None leaves the
        element out, as older Nova did
    """
    root = etree.Element('domain', type=domain_type)
    etree.SubElement(root, 'name').text = name
    etree.SubElement(root, 'uuid').text = uuid
    if nova is not None:
        metadata = etree.SubElement(root, 'metadata')
        q = '{%s}%%s' % NOVA_NS
        instance = etree.SubElement(metadata, q % 'instance',
                                    nsmap={'nova': NOVA_NS})
        etree.SubElement(instance, q % 'package', version='34.0.0')
        etree.SubElement(instance, q % 'name').text = str(nova['name'])
        flavor = etree.SubElement(instance, q % 'flavor',
                                  name=str(nova['flavor']), id='1')
        etree.SubElement(flavor, q % 'memory').text = str(nova['memory'])
        etree.SubElement(flavor, q % 'disk').text = '1'
        etree.SubElement(flavor, q % 'vcpus').text = str(nova['vcpus'])
        specs = nova.get('extra_specs')
        if specs is not None:
            element = etree.SubElement(flavor, q % 'extraSpecs')
            for key, value in dict(specs).items():  # type: ignore
                etree.SubElement(element, q % 'extraSpec',
                                 name=key).text = value
        image = etree.SubElement(instance, q % 'image', uuid='')
        props = etree.SubElement(image, q % 'properties')
        for key, value in dict(nova.get('image_props')
                               or {}).items():  # type: ignore
            etree.SubElement(props, q % 'property', name=key).text = value
    etree.SubElement(root, 'memory', unit='KiB').text = '524288'
    vcpu = etree.SubElement(root, 'vcpu', placement='static')
    vcpu.text = str(len(vcpupins))
    if vcpu_cpuset:
        vcpu.set('cpuset', vcpu_cpuset)
    if iothreadpins:
        etree.SubElement(root, 'iothreads').text = str(len(iothreadpins))
    tune = etree.SubElement(root, 'cputune')
    etree.SubElement(tune, 'shares').text = str(1024 * len(vcpupins))
    for v, pcpus in sorted(vcpupins.items()):
        etree.SubElement(tune, 'vcpupin', vcpu=str(v), cpuset=pcpus)
    if emulatorpin is not None:
        etree.SubElement(tune, 'emulatorpin', cpuset=emulatorpin)
    for i, pcpus in sorted((iothreadpins or {}).items()):
        etree.SubElement(tune, 'iothreadpin', iothread=str(i), cpuset=pcpus)
    os_el = etree.SubElement(root, 'os')
    etree.SubElement(os_el, 'type', arch='x86_64').text = 'hvm'
    return etree.tostring(root, encoding='unicode')


def node_xml(domains: list[str], cpus: int = 8) -> str:
    """A node document for libvirt's test driver (``test:///<file>``).

    The test driver reports 8 host CPUs in its CPU maps whatever the node
    says, so the guests here use pCPUs 0-7.
    """
    root = etree.Element('node')
    cpu = etree.SubElement(root, 'cpu')
    for tag, value in (('mhz', '2000'), ('model', 'x86_64'), ('nodes', '1'),
                       ('sockets', '1'), ('cores', str(cpus)),
                       ('threads', '1'), ('active', str(cpus))):
        etree.SubElement(cpu, tag).text = value
    etree.SubElement(root, 'memory').text = '8388608'
    for xml in domains:
        element = etree.fromstring(xml)
        element.set('type', 'test')
        root.append(element)
    return etree.tostring(root, encoding='unicode')


# ---------------------------------------------------------------------------
# The recorded guests
# ---------------------------------------------------------------------------

#: instance-0000001d: 4 vCPUs pinned to 34, 14, 10, 30, emulator threads
#: floating over all four (the default emulatorpin of a pinned guest).
UUID_1D = '8b2a5c3e-3d5f-4a57-8d4a-7a0f2c1e9d1d'
PID_1D = 73517
PINS_1D = {0: '34', 1: '14', 2: '10', 3: '30'}
THREADS_1D = [
    (73517, 'qemu-kvm', '10,14,30,34'),
    (73527, 'qemu-kvm', '10,14,30,34'),
    (73535, 'CPU 0/KVM', '34'),
    (73536, 'CPU 1/KVM', '14'),
    (73537, 'CPU 2/KVM', '10'),
    (73538, 'CPU 3/KVM', '30'),
    (73540, 'vnc_worker', '10,14,30,34'),
]
NOVA_1D = {'name': 'vnf-1', 'flavor': 'nfv.4', 'vcpus': 4, 'memory': 4096,
           'extra_specs': {'hw:cpu_policy': 'dedicated'}}

#: instance-00000009: 3 vCPUs on pCPUs 1-3, isolcpus=1-3, emulator and
#: vhost threads all on pCPU 1 (the scheduler does not balance threads
#: over isolated CPUs).
UUID_09 = '5d1e7c90-1f0a-4a52-9b0e-3f1f00000009'
PID_09 = 364936
PINS_09 = {0: '1', 1: '2', 2: '3'}
THREADS_09 = [
    (364936, 'qemu-kvm', '1-3'),
    (364946, 'qemu-kvm', '1-3'),
    (364952, 'CPU 0/KVM', '1'),
    (364953, 'CPU 1/KVM', '2'),
    (364954, 'CPU 2/KVM', '3'),
    (364956, 'vnc_worker', '1-3'),
]
VHOST_09 = [364948, 364949, 364950]
NOVA_09 = {'name': 'vnf-9', 'flavor': 'nfv.3', 'vcpus': 3, 'memory': 2048,
           'extra_specs': {'hw:cpu_policy': 'dedicated'}}


def chapter_1d(tree: HostTree, nova: bool = True) -> str:
    """instance-0000001d on a 40-CPU host; returns its domain XML."""
    tree.set_cpus('0-39')
    tree.set_machine_cpuset('0-39')
    tree.add_process(PID_1D, qemu_argv('instance-0000001d', UUID_1D),
                     THREADS_1D)
    return domain_xml('instance-0000001d', UUID_1D, PINS_1D,
                      emulatorpin='10,14,30,34',
                      nova=NOVA_1D if nova else None)


def chapter_09(tree: HostTree, nova: bool = True) -> str:
    """instance-00000009 on a 4-CPU host with isolcpus=1-3."""
    tree.set_cpus('0-3', isolated='1-3')
    tree.set_cmdline('BOOT_IMAGE=/vmlinuz ro isolcpus=1-3 nohz_full=1-3')
    tree.add_process(PID_09, qemu_argv('instance-00000009', UUID_09),
                     THREADS_09)
    for pid in VHOST_09:
        tree.add_kernel_thread(pid, 'vhost-%d' % PID_09, '1-3')
    return domain_xml('instance-00000009', UUID_09, PINS_09,
                      emulatorpin='1-3', nova=NOVA_09 if nova else None)


def make_domain(xml: str, online: str, active: bool = True,
                persistent: bool = True, config_xml: str | None = None,
                ) -> libvirt_domains.Domain:
    """The ``Domain`` libvirt would report for a domain XML.

    Pins follow libvirt's rules for what ``vcpuPinInfo``,
    ``emulatorPinInfo`` and ``ioThreadInfo`` return: the element's set,
    else ``<vcpu cpuset>``, else every online CPU.

    :param config_xml: the persistent definition when it differs from
        the live XML
    """
    live = libvirt_domains.parse_domain_xml(xml, 'live XML')
    config = (libvirt_domains.parse_domain_xml(config_xml or xml,
                                               'persistent XML')
              if persistent else None)
    default = live.vcpu_cpuset or cpuset.parse_cpu_spec(online)
    root = etree.fromstring(xml)
    return libvirt_domains.Domain(
        name=root.findtext('name'), uuid=root.findtext('uuid'),
        active=active, persistent=persistent, live=live, config=config,
        vcpu_pins={v: live.cputune.vcpupins.get(v, default)
                   for v in range(live.vcpus)},
        emulator_pins=live.cputune.emulatorpin or default,
        iothread_pins={i: live.cputune.iothreadpins.get(i, default)
                       for i in live.iothread_ids})


def snapshot_of(tree: HostTree,
                domains: list[libvirt_domains.Domain],
                ) -> snapshot.HostSnapshot:
    """What ``snapshot.take_snapshot`` reads, for recorded domains."""
    return snapshot.HostSnapshot(
        cpus=sysfs.read_host_cpus(tree.sys_root, tree.proc_root),
        machine_cpuset=cgroup.read_machine_cpuset(tree.sys_root),
        guests=snapshot.attach_processes(domains, tree.proc_root))
