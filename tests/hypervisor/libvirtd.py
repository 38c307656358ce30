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


"""A private libvirtd running real QEMU guests, for the hypervisor tier.

``LibvirtDaemon`` starts ``virtlogd`` and ``libvirtd`` as root in a
private mount namespace where ``/etc/libvirt``, ``/run/libvirt``,
``/var/lib/libvirt``, ``/var/cache/libvirt`` and ``/var/log/libvirt`` are
directories of the fixture's own temporary tree. So the daemon has its
own configuration (``qemu.conf`` runs QEMU as root, which KVM needs
here), its own sockets, domain definitions and logs, listens on no
network port (TCP and TLS are off; the Unix sockets are in the tree, mode
0700) and cannot clash with a libvirtd of the host or of another test
run. Clients reach it with ``qemu:///system?socket=<tree>/run/libvirt-sock``.

On cleanup every guest is destroyed and undefined, the daemons are
stopped by pid, any QEMU process they leave is killed by the pid file
libvirt wrote, and the tree is removed; the namespace (and its mounts)
ends with its last process.

Everything here needs root: installing the Debian packages when they
are missing, the mount namespace, and libvirtd's system instance
(cgroups, /dev/kvm). Without root ``ensure_installed`` raises
``Unavailable``, which the tests turn into a skip that says so; as root
(CI) any failure to install or start is a test failure, never a skip.
KVM is used when libvirt offers it, TCG otherwise.
"""

import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
import typing
import uuid as uuidlib

import fixtures
from lxml import etree

#: Debian packages for the daemon, QEMU and the Python binding's build.
APT_PACKAGES = ('libvirt-daemon-system', 'libvirt-daemon-driver-qemu',
                'qemu-system-x86', 'libvirt-clients', 'libvirt-dev',
                'pkg-config')
#: The binding matching Debian 12's libvirt.
PIP_PACKAGE = 'libvirt-python==9.0.0'
QEMU = '/usr/bin/qemu-system-x86_64'
#: Directories the private namespace replaces, by name in the tree.
PRIVATE_DIRS = (('etc', '/etc/libvirt'), ('run', '/run/libvirt'),
                ('lib', '/var/lib/libvirt'), ('cache', '/var/cache/libvirt'),
                ('log', '/var/log/libvirt'))
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

LIBVIRTD_CONF = '''\
# Unix sockets only, in the fixture's tree, for root only.
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
'''
QEMU_CONF = '''\
# QEMU as root: Debian's libvirt-qemu user cannot open /dev/kvm here, and
# libvirt then re-probes QEMU on every call (about 40 s per define).
user = "root"
group = "root"
# No AppArmor/SELinux labelling: the host may not run either.
security_driver = "none"
'''
VIRTLOGD_CONF = 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"\n'


class Unavailable(Exception):
    """Why the hypervisor tier cannot run here (the skip reason)."""


class StartFailed(Exception):
    """Installing or starting the daemons failed (a test failure)."""


def _run(argv: list[str], **kwargs: typing.Any,
         ) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False,
                          **kwargs)


def ensure_installed() -> None:
    """Install QEMU, libvirt and libvirt-python if they are missing."""
    if os.geteuid() != 0:
        raise Unavailable('needs root to install QEMU/libvirt and start '
                          'libvirtd (running as uid %d)' % os.geteuid())
    missing = [tool for tool in ('libvirtd', 'virtlogd', 'unshare')
               if shutil.which(tool) is None]
    if missing or not os.path.exists(QEMU):
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        install = ['apt-get', 'install', '-y', '-q', *APT_PACKAGES]
        done = _run(install, env=env)
        if done.returncode != 0:
            _run(['apt-get', 'update', '-q'], env=env)
            done = _run(install, env=env)
        if done.returncode != 0:
            raise StartFailed('cannot install %s: %s' % (
                ' '.join(APT_PACKAGES), done.stderr.strip()[-500:]))
    try:
        importlib.import_module('libvirt')
    except ImportError:
        done = _run([sys.executable, '-m', 'pip', 'install', PIP_PACKAGE])
        if done.returncode != 0:
            raise StartFailed('cannot pip install %s: %s' % (
                PIP_PACKAGE, done.stderr.strip()[-500:])) from None
        importlib.invalidate_caches()
        importlib.import_module('libvirt')


#: How the daemons start, inside the private namespace.
VIRTLOGD_START = ('virtlogd --daemon --config /etc/libvirt/virtlogd.conf '
                  '--pid-file /run/libvirt/virtlogd.pid')
LIBVIRTD_START = ('libvirtd --daemon --config /etc/libvirt/libvirtd.conf '
                  '--pid-file /run/libvirt/libvirtd.pid')


def _start_script(tree: str) -> str:
    lines = ['set -e']
    for name, target in PRIVATE_DIRS:
        lines.append('mkdir -p %s' % target)
        lines.append('mount --bind %s %s' % (os.path.join(tree, name),
                                             target))
    lines += [VIRTLOGD_START, LIBVIRTD_START]
    return '\n'.join(lines) + '\n'


class LibvirtDaemon(fixtures.Fixture):
    """A private libvirtd + virtlogd (see the module docstring)."""

    def _setUp(self) -> None:
        ensure_installed()
        import libvirt
        self.libvirt = libvirt
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.tree = self.useFixture(fixtures.TempDir()).path
        for name, _target in PRIVATE_DIRS:
            os.makedirs(os.path.join(self.tree, name))
        for conf, text in (('libvirtd.conf', LIBVIRTD_CONF),
                           ('qemu.conf', QEMU_CONF),
                           ('virtlogd.conf', VIRTLOGD_CONF)):
            with open(os.path.join(self.tree, 'etc', conf), 'w') as handle:
                handle.write(text)
        self.run_dir = os.path.join(self.tree, 'run')
        self.uri = 'qemu:///system?socket=%s' % os.path.join(
            self.run_dir, 'libvirt-sock')
        self.addCleanup(self._stop)
        started = _run(['unshare', '--mount', '--propagation', 'private',
                        'sh', '-c', _start_script(self.tree)])
        if started.returncode != 0:
            raise StartFailed(
                'cannot start a private libvirtd (mount namespace or '
                'daemon start failed): %s' % started.stderr.strip()[-500:])
        self.conn = self._connect()
        self.addCleanup(self._destroy_guests)
        self.kvm = self._kvm_available()

    def _connect(self) -> typing.Any:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return self.libvirt.open(self.uri)
            except self.libvirt.libvirtError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _kvm_available(self) -> bool:
        try:
            self.conn.getDomainCapabilities(QEMU, 'x86_64', None, 'kvm')
        except self.libvirt.libvirtError:
            return False
        return True

    def log(self, name: str) -> str:
        """A log of the daemon: ``libvirtd.log``, ``qemu/<guest>.log``."""
        try:
            with open(os.path.join(self.tree, 'log', name)) as handle:
                return handle.read()
        except OSError as exc:
            return '(%s)' % exc

    def _destroy_guests(self) -> None:
        for dom in self.conn.listAllDomains():
            try:
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
            except self.libvirt.libvirtError:
                pass  # the daemon stop and the pid files below finish it
        self.conn.close()

    def _pids(self, *names: str) -> list[int]:
        pids = []
        for name in names:
            try:
                with open(os.path.join(self.run_dir, name)) as handle:
                    pids.append(int(handle.read().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def kill_libvirtd(self) -> int:
        """SIGKILL libvirtd, as a crash would; its guests run on.

        :returns: the pid it had
        """
        (pid,) = self._pids('libvirtd.pid')
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid):
            if time.monotonic() > deadline:
                raise StartFailed('libvirtd (pid %d) outlived SIGKILL' % pid)
            time.sleep(0.02)
        return pid

    def start_libvirtd(self) -> None:
        """Start libvirtd again, in the private namespace its virtlogd
        (and guests) still live in, and connect to it anew.
        """
        (virtlogd,) = self._pids('virtlogd.pid')
        started = _run(['nsenter', '--target', str(virtlogd), '--mount',
                        'sh', '-c', LIBVIRTD_START])
        if started.returncode != 0:
            raise StartFailed('cannot start libvirtd again: %s'
                              % started.stderr.strip()[-500:])
        try:
            self.conn.close()
        except self.libvirt.libvirtError:
            pass  # the connection died with the old daemon
        self.conn = self._connect()

    def daemon_pids(self) -> list[int]:
        """The pids of libvirtd and virtlogd."""
        return self._pids('libvirtd.pid', 'virtlogd.pid')

    def _stop(self) -> None:
        qemu_dir = os.path.join(self.run_dir, 'qemu')
        qemu_pids = self._pids(*[
            os.path.join('qemu', name)
            for name in (os.listdir(qemu_dir) if os.path.isdir(qemu_dir)
                         else []) if name.endswith('.pid')])
        for pid in self._pids('libvirtd.pid', 'virtlogd.pid') + qemu_pids:
            _terminate(pid)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------
# Guests
# ---------------------------------------------------------------------------

NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'


def guest_xml(name: str, cputune: etree._Element, *, kvm: bool,
              vnc_socket: str, iothreads: int = 0,
              nova_flavor: dict[str, typing.Any] | None = None,
              memory_mib: int = 64) -> str:
    """A small guest: no disk (it sits in its firmware), a VNC server on a
    Unix socket, ``iothreads`` I/O threads, and the given ``<cputune>``.

    :param nova_flavor: ``{'name', 'vcpus', 'memory', 'extra_specs'}``
        to write the ``nova:instance`` metadata Nova 34 writes
    """
    vcpus = len(cputune.findall('vcpupin')) or 1
    root = etree.Element('domain', type='kvm' if kvm else 'qemu')
    etree.SubElement(root, 'name').text = name
    etree.SubElement(root, 'uuid').text = str(uuidlib.uuid4())
    if nova_flavor is not None:
        q = '{%s}%%s' % NOVA_NS
        metadata = etree.SubElement(root, 'metadata')
        instance = etree.SubElement(metadata, q % 'instance',
                                    nsmap={'nova': NOVA_NS})
        etree.SubElement(instance, q % 'package', version='34.0.0')
        etree.SubElement(instance, q % 'name').text = name
        flavor = etree.SubElement(instance, q % 'flavor',
                                  name=nova_flavor['name'], id='1')
        etree.SubElement(flavor, q % 'memory').text = str(
            nova_flavor['memory'])
        etree.SubElement(flavor, q % 'vcpus').text = str(nova_flavor['vcpus'])
        specs = etree.SubElement(flavor, q % 'extraSpecs')
        for key, value in nova_flavor['extra_specs'].items():
            etree.SubElement(specs, q % 'extraSpec', name=key).text = value
    etree.SubElement(root, 'memory', unit='MiB').text = str(memory_mib)
    etree.SubElement(root, 'vcpu', placement='static').text = str(vcpus)
    if iothreads:
        etree.SubElement(root, 'iothreads').text = str(iothreads)
    root.append(cputune)
    os_el = etree.SubElement(root, 'os')
    etree.SubElement(os_el, 'type', arch='x86_64', machine='pc').text = 'hvm'
    devices = etree.SubElement(root, 'devices')
    etree.SubElement(devices, 'emulator').text = QEMU
    etree.SubElement(devices, 'graphics', type='vnc', socket=vnc_socket)
    etree.SubElement(devices, 'memballoon', model='none')
    return etree.tostring(root, encoding='unicode')


class Guest(fixtures.Fixture):
    """A defined, running guest of a ``LibvirtDaemon``; gone on cleanup."""

    def __init__(self, daemon: LibvirtDaemon, name: str,
                 cputune: etree._Element, **kwargs: typing.Any) -> None:
        super().__init__()
        self.daemon = daemon
        self.name = name
        self.cputune = cputune
        self.kwargs = kwargs

    def _setUp(self) -> None:
        conn = self.daemon.conn
        xml = guest_xml(self.name, self.cputune, kvm=self.daemon.kvm,
                        vnc_socket=os.path.join(self.daemon.run_dir,
                                                self.name + '.vnc'),
                        **self.kwargs)
        self.dom = conn.defineXML(xml)
        self.addCleanup(self._remove)
        self.dom.create()
        self.pid = qemu_pid(self.daemon, self.name)

    def _remove(self) -> None:
        libvirt = self.daemon.libvirt
        try:
            if self.dom.isActive():
                self.dom.destroy()
            self.dom.undefine()
        except libvirt.libvirtError:
            pass  # already gone: the daemon fixture checks the rest

    def restart(self) -> None:
        self.dom.destroy()
        self.dom.create()
        self.pid = qemu_pid(self.daemon, self.name)


def qemu_pid(daemon: LibvirtDaemon, name: str) -> int:
    """The QEMU pid libvirt recorded for a running guest."""
    with open(os.path.join(daemon.run_dir, 'qemu', name + '.pid')) as handle:
        return int(handle.read().strip())
