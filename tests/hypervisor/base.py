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


"""The base class of the hypervisor tier's tests, and their helpers."""

import contextlib
import io
import json
import time
import unittest
import uuid

import fixtures
import testtools
from lxml import etree

from nova_emulator_threads import cpuset
from nova_emulator_threads.cmd import main
from nova_emulator_threads.host import audit
from nova_emulator_threads.host import procfs
from tests.hypervisor import libvirtd
from tests.hypervisor import proof
from tests.hypervisor import spinguest

P = cpuset.parse_cpu_spec


def make_cputune(vcpupins: dict[int, str], emulatorpin: str,
             iothreadpins: dict[int, str]) -> etree._Element:
    root = etree.Element('cputune')
    for vcpu, pcpus in sorted(vcpupins.items()):
        etree.SubElement(root, 'vcpupin', vcpu=str(vcpu), cpuset=pcpus)
    etree.SubElement(root, 'emulatorpin', cpuset=emulatorpin)
    for iothread, pcpus in sorted(iothreadpins.items()):
        etree.SubElement(root, 'iothreadpin', iothread=str(iothread),
                         cpuset=pcpus)
    return root


class HypervisorTestCase(testtools.TestCase):
    """One private daemon for each test class; one or two guests per test.

    Tests go in subclasses, so that each class gets a daemon of its own.
    """

    daemon: libvirtd.LibvirtDaemon

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.started = time.monotonic()
        try:
            libvirtd.ensure_installed()
        except libvirtd.Unavailable as exc:
            raise unittest.SkipTest(str(exc)) from None
        cls.daemon = libvirtd.LibvirtDaemon()
        # A fixture that fails to set up has cleaned up after itself.
        cls.daemon.setUp()
        # The first call that needs QEMU's capabilities probes QEMU (a few
        # seconds); do it once, here, rather than in the first test.
        cls.caps = cls.daemon.conn.getCapabilities()
        cls.startup_seconds = time.monotonic() - cls.started

    @classmethod
    def tearDownClass(cls) -> None:
        cls.daemon.cleanUp()
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        self.addDetail('startup', testtools.content.text_content(
            'daemon ready in %.1f s, guests: %s' % (
                self.startup_seconds, 'KVM' if self.daemon.kvm else 'TCG')))
        self.addOnException(self._attach_logs)
        # Unique names: libvirt's cgroups are named after the guests, and
        # another daemon on this host may have guests too.
        self.suffix = uuid.uuid4().hex[:6]

    def _attach_logs(self, exc_info: object) -> None:
        self.addDetail('libvirtd.log', testtools.content.text_content(
            self.daemon.log('libvirtd.log')[-20000:]))

    def guest(self, name: str, tune: etree._Element,
              **kwargs: object) -> libvirtd.Guest:
        return self.useFixture(libvirtd.Guest(
            self.daemon, '%s-%s' % (name, self.suffix), tune, **kwargs))

    def default_spin_guest(self, name: str, mib: int
                           ) -> tuple[spinguest.SpinGuest, str]:
        """A booted one-vCPU spinning guest with one I/O thread, pinned as
        Nova pins it by default (its emulator threads on its vCPU's pCPU).

        :returns: the guest, and the temporary directory of its disk
        """
        directory = self.useFixture(fixtures.TempDir()).path
        disk = spinguest.build_disk(directory, mib=mib)
        _, specs, dedicated, shared = proof.PINNINGS[0]
        tune = proof.plan(self.caps, specs, dedicated, shared)
        guest = self.useFixture(spinguest.SpinGuest(
            self.daemon, name, tune, disk, iothreads=1))
        guest.wait_booted()
        return guest, directory

    def cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main.main([*argv[:1], '--connect', self.daemon.uri,
                                *argv[1:]])
        self.addDetail('%s-%d' % (argv[0], len(self.getDetails())),
                       testtools.content.text_content(
                           'argv: %s\nstatus: %d\nstdout:\n%s\nstderr:\n%s'
                           % (argv, status, out.getvalue(), err.getvalue())))
        return status, out.getvalue(), err.getvalue()

    def audit_json(self, *argv: str) -> tuple[int, dict]:
        status, out, err = self.cli('audit', '--format', 'json', *argv)
        self.assertIn(status, (0, 1), err)
        return status, json.loads(out)

    def threads(self, guest: libvirtd.Guest) -> dict[str, frozenset[int]]:
        """Thread name (with tid) -> Cpus_allowed_list, from /proc."""
        return {'%s/%d' % (t.name, t.tid): t.cpus
                for t in procfs.process_threads(guest.pid)}

    def assertPlacement(self, guest: libvirtd.Guest,
                        vcpupins: dict[int, frozenset[int]],
                        emulatorpin: frozenset[int],
                        iothreadpins: dict[int, frozenset[int]]) -> None:
        """/proc shows every thread of the guest where the pins say."""
        seen = {audit.VCPU: 0, audit.EMULATOR: 0, audit.IOTHREAD: 0}
        for thread in procfs.process_threads(guest.pid):
            kind = audit.classify(thread, guest.pid, iothreadpins)
            label = '%s/%d' % (thread.name, thread.tid)
            if kind.kind == audit.VCPU:
                self.assertEqual(vcpupins[kind.index], thread.cpus, label)
            elif kind.kind == audit.IOTHREAD:
                self.assertEqual(iothreadpins[kind.index], thread.cpus,
                                 label)
            elif kind.kind == audit.EMULATOR:
                self.assertEqual(emulatorpin, thread.cpus, label)
            else:
                continue  # kvm-* helpers: see host.audit
            seen[kind.kind] += 1
        self.assertEqual(len(vcpupins), seen[audit.VCPU])
        self.assertEqual(len(iothreadpins), seen[audit.IOTHREAD])
        # The main thread, the RCU thread, the monitor I/O thread, vnc...
        self.assertGreaterEqual(seen[audit.EMULATOR], 3)
