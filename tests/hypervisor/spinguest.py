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


"""A guest whose vCPU is always busy, and a real load on its emulator.

``build_disk`` assembles ``guest/spin.S`` (a 512-byte boot sector that
spins on the time stamp counter and reports its largest stall on the
serial port) with binutils, at test time, and writes it as the first
sector of a raw disk whose other sectors are random data: something for
a block copy to copy (QEMU skips zeroes).

``SpinGuest`` boots that disk under a ``libvirtd.LibvirtDaemon`` as a
transient guest (as Nova's are, to libvirt's block copy), with the given
``<cputune>``, a serial port logged to a file, and its disk on QEMU's
main loop (``aio=threads``: reads and writes go to QEMU's ``worker``
threads).

``BlockCopyLoad`` is the emulator load: a block copy of the guest's disk
(``virsh blockcopy``: a mirror job in QEMU), aborted once the copy is in
sync and started again, in a thread, for as long as it runs. The work is
QEMU's: its main loop runs the mirror job, its worker threads read and
write; libvirtd only starts and polls the job.
"""

import os
import re
import shutil
import subprocess
import threading
import time
import typing

import fixtures
from lxml import etree

from tests.hypervisor import libvirtd

SOURCE = os.path.join(os.path.dirname(__file__), 'guest', 'spin.S')
#: The disk: the boot sector and random data to copy.
DISK_MIB = 128
_GAP = re.compile(r'^gap ([0-9a-f]{8})$', re.MULTILINE)


def build_disk(directory: str, mib: int = DISK_MIB) -> str:
    """Assemble the boot sector and write the disk; returns its path."""
    for tool in ('as', 'ld'):
        if shutil.which(tool) is None:
            raise libvirtd.StartFailed(
                'binutils (%s) is needed to build the guest' % tool)
    obj = os.path.join(directory, 'spin.o')
    sector = os.path.join(directory, 'spin.bin')
    for argv in (['as', '--32', '-o', obj, SOURCE],
                 ['ld', '-m', 'elf_i386', '-Ttext=0x7c00',
                  '--oformat=binary', '-e', '_start', '-o', sector, obj]):
        done = subprocess.run(argv, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise libvirtd.StartFailed('%s failed: %s' % (
                ' '.join(argv), done.stderr.strip()))
    with open(sector, 'rb') as handle:
        boot = handle.read()
    if len(boot) != 512 or boot[510:] != b'\x55\xaa':
        raise libvirtd.StartFailed('the boot sector is %d bytes, not 512 '
                                   'ending in 55 aa' % len(boot))
    disk = os.path.join(directory, 'spin.img')
    with open(disk, 'wb') as handle:
        handle.write(boot)
        for _ in range(mib):
            handle.write(os.urandom(1 << 20))
    return disk


def spin_guest_xml(name: str, cputune: etree._Element, *, kvm: bool,
                   vnc_socket: str, disk: str, serial_log: str,
                   **kwargs: typing.Any) -> str:
    """``libvirtd.guest_xml`` plus the boot disk and a logged serial."""
    root = etree.fromstring(libvirtd.guest_xml(
        name, cputune, kvm=kvm, vnc_socket=vnc_socket, **kwargs))
    etree.SubElement(root.find('os'), 'boot', dev='hd')
    devices = root.find('devices')
    element = etree.SubElement(devices, 'disk', type='file', device='disk')
    etree.SubElement(element, 'driver', name='qemu', type='raw',
                     io='threads')
    etree.SubElement(element, 'source', file=disk)
    etree.SubElement(element, 'target', dev='vda', bus='virtio')
    serial = etree.SubElement(devices, 'serial', type='file')
    etree.SubElement(serial, 'source', path=serial_log)
    etree.SubElement(serial, 'target', port='0')
    return etree.tostring(root, encoding='unicode')


class SpinGuest(fixtures.Fixture):
    """A running transient spin guest; destroyed on cleanup."""

    def __init__(self, daemon: libvirtd.LibvirtDaemon, name: str,
                 cputune: etree._Element, disk: str,
                 **kwargs: typing.Any) -> None:
        super().__init__()
        self.kwargs = kwargs
        self.daemon = daemon
        self.name = name
        self.cputune = cputune
        self.disk = disk

    def _setUp(self) -> None:
        self.serial_log = os.path.join(self.daemon.tree, self.name + '.serial')
        xml = spin_guest_xml(
            self.name, self.cputune, kvm=self.daemon.kvm,
            vnc_socket=os.path.join(self.daemon.run_dir, self.name + '.vnc'),
            disk=self.disk, serial_log=self.serial_log, **self.kwargs)
        self.dom = self.daemon.conn.createXML(xml, 0)
        self.addCleanup(self._destroy)
        self.pid = libvirtd.qemu_pid(self.daemon, self.name)
        self.uuid = self.dom.UUIDString()

    def _destroy(self) -> None:
        try:
            self.dom.destroy()
        except self.daemon.libvirt.libvirtError:
            pass  # already gone

    def wait_booted(self, timeout: float = 30.0) -> None:
        """Until the boot sector runs (it writes "up" first)."""
        deadline = time.monotonic() + timeout
        while 'up\n' not in self.serial():
            if time.monotonic() > deadline:
                raise libvirtd.StartFailed(
                    'guest %s did not boot its spin sector in %.0f s; '
                    'serial: %r' % (self.name, timeout, self.serial()))
            time.sleep(0.1)

    def serial(self) -> str:
        try:
            with open(self.serial_log, encoding='ascii',
                      errors='replace') as handle:
                return handle.read()
        except FileNotFoundError:
            return ''

    def gaps(self) -> list[int]:
        """The largest stall of each window so far, in TSC cycles."""
        return [int(value, 16) for value in _GAP.findall(self.serial())]


class BlockCopyLoad:
    """Copy the guest's disk again and again, in a thread (see above)."""

    def __init__(self, guest: SpinGuest, directory: str) -> None:
        self.guest = guest
        self.target = os.path.join(directory, guest.name + '.copy')
        self.copies = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> 'BlockCopyLoad':
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._copy_once()
        except BaseException as exc:  # reported by __exit__
            self.error = exc

    def _copy_once(self) -> None:
        libvirt = self.guest.daemon.libvirt
        dom = self.guest.dom
        dest = ('<disk type="file"><source file="%s"/>'
                '<driver type="raw"/></disk>' % self.target)
        dom.blockCopy('vda', dest, None, 0)
        try:
            while not self._stop.is_set():
                info = dom.blockJobInfo('vda', 0)
                if info and info['end'] and info['cur'] == info['end']:
                    break
                time.sleep(0.02)
        finally:
            dom.blockJobAbort('vda', 0)
            # The job ends asynchronously; wait until it is gone.
            deadline = time.monotonic() + 30
            while dom.blockJobInfo('vda', 0):
                if time.monotonic() > deadline:
                    raise libvirt.libvirtError('block job did not end')
                time.sleep(0.02)
        self.copies += 1
        try:
            os.unlink(self.target)
        except FileNotFoundError:
            pass
