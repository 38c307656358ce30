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


"""``nova-emulator-threads audit`` and ``pin`` on libvirt's test driver
and recorded ``/proc`` and ``/sys`` trees, through the CLI's ``main``."""

import contextlib
import io
import json
import os
from collections.abc import Callable

import ddt

from nova_emulator_threads import exception
from nova_emulator_threads.cmd import main
from nova_emulator_threads.cmd import pin
from tests.unit import base
from tests.unit.cmd import command
from tests.unit.host import fakehost
from tests.unit.host import testdriver

BAD = fakehost.domain_xml('bad', testdriver.UUID_A, {0: '1'},
                          emulatorpin='0-1', iothreadpins={1: '0-1'})
CLEAN = fakehost.domain_xml('clean', testdriver.UUID_B, {0: '3'},
                            emulatorpin='2')
#: The Nova metadata of a 2-vCPU ``share`` guest.
NOVA_SHARE = {'name': 'vm', 'flavor': 'f', 'vcpus': 2, 'memory': 1024,
              'extra_specs': {'hw:cpu_policy': 'dedicated',
                              'hw:cpu_emulator_threads': 'share'}}



@ddt.ddt
class CommandTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.tree.set_cpus('0-7')

    def node(self, *domains: str) -> str:
        return self.useFixture(testdriver.TestDriverFixture(list(domains))).uri

    def cli(self, *argv: str) -> tuple[int, str, str]:
        return command.main(*argv)

    def host_args(self, uri: str) -> list[str]:
        return ['--connect', uri, '--proc-root', self.tree.proc_root,
                '--sys-root', self.tree.sys_root]

    # -- audit ----------------------------------------------------------------

    def test_audit_json(self) -> None:
        uri = self.node(BAD, CLEAN)
        status, out, err = self.cli('audit', *self.host_args(uri),
                                    '--format', 'json')
        self.assertEqual((1, ''), (status, err))
        result = json.loads(out)
        self.assertEqual(list(range(8)), result['host']['online'])
        self.assertIsNone(result['host']['machine_cpuset'])
        self.assertEqual(['bad', 'clean'],
                         [g['name'] for g in result['guests']])
        bad = result['guests'][0]
        self.assertEqual({'0': [1]}, bad['vcpupin'])
        self.assertEqual([0, 1], bad['emulatorpin'])
        self.assertEqual({'1': [0, 1]}, bad['iothreadpin'])
        self.assertIsNone(bad['pid'])
        self.assertEqual(
            [{'severity': 'warning', 'code': 'emulator-on-vcpu-pcpu',
              'domain': 'bad', 'fixable_by_pin': True,
              'message': 'emulator threads (emulatorpin, iothreadpin 1) may '
                         'run on pCPU 1, shared with vCPU 0 on pCPU 1: they '
                         'preempt the vCPU whenever they have work'}],
            result['findings'])

    def test_audit_installed_command(self) -> None:
        # The smoke test of the console script: what main() prints.
        args = ['audit', *self.host_args(self.node(BAD, CLEAN)), '-f', 'json']
        result = command.run(*args)
        self.assertEqual(1, result.returncode, result.stderr)
        self.assertEqual(self.cli(*args),
                         (result.returncode, result.stdout, result.stderr))

    def test_audit_table(self) -> None:
        uri = self.node(BAD, CLEAN)
        status, out, _ = self.cli('audit', *self.host_args(uri))
        self.assertEqual(1, status)
        self.assertIn('host: online CPUs 0-7, isolated none', out)
        self.assertIn('bad (pid unknown)\n  vCPU pins        0:1\n'
                      '  emulator pins    0-1\n  I/O thread pins  1:0-1\n',
                      out)
        self.assertIn('  WARNING emulator-on-vcpu-pcpu: emulator threads',
                      out)
        self.assertTrue(out.endswith(
            '2 guests, 1 findings (0 errors, 1 warnings)\n'))

    def test_audit_clean(self) -> None:
        uri = self.node(CLEAN)
        status, out, _ = self.cli('audit', *self.host_args(uri))
        self.assertEqual(0, status)
        self.assertTrue(out.endswith('1 guests, no findings\n'))

    # The arguments, from the test (it makes the node file); the words.
    @ddt.named_data(
        ['no node file',
         lambda t: ['--connect', 'test:///nonexistent.xml'],
         'test:///nonexistent.xml'],
        ['reversed shared set',
         lambda t: [*t.host_args(t.node(CLEAN)), '--cpu-shared-set', '3-1'],
         '--cpu-shared-set'],
        ['no sys root',
         lambda t: ['--connect', t.node(CLEAN), '--sys-root', '/nonexistent'],
         '/nonexistent'])
    def test_audit_errors_are_one_line(
            self, argv: Callable[['CommandTestCase'], list[str]],
            words: str) -> None:
        status, out, err = self.cli('audit', *argv(self))
        self.assertEqual(2, status, err)
        self.assertEqual('', out)
        self.assertEqual(1, err.count('\n'), err)
        self.assertIn(words, err)

    def test_audit_refuses_a_remote_uri(self) -> None:
        status, out, err = self.cli('audit', '-c', 'qemu+ssh://cn7/system')
        self.assertEqual((2, ''), (status, out))
        self.assertEqual(
            "nova-emulator-threads audit: Invalid input: --connect "
            "'qemu+ssh://cn7/system' names host 'cn7'; the audit reads this "
            "host's /proc and /sys, so run it on that host with a local URI "
            "such as qemu:///system\n", err)

    def test_audit_yaml_columns(self) -> None:
        uri = self.node(CLEAN)
        status, out, _ = self.cli('audit', *self.host_args(uri), '-f',
                                  'value', '--column', 'findings')
        self.assertEqual((0, '[]\n'), (status, out))

    # -- pin ------------------------------------------------------------------

    @ddt.data(',,,', '^0', '3-1')
    def test_pin_checks_cpuset_before_connecting(self, cpus: str) -> None:
        # The URI names no daemon: the CPU set must be refused first.
        status, out, err = self.cli(
            'pin', 'bad', cpus, '--connect', 'qemu:///nonexistent')
        self.assertEqual((2, ''), (status, out))
        self.assertIn("CPUSET=%r" % cpus, err)
        self.assertNotIn('nonexistent', err)

    def test_pin_help_says_both_by_default(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertRaises(SystemExit, main.main, ['pin', '--help'])
        help_text = ' '.join(out.getvalue().split())
        self.assertIn('with neither --live nor --config: both', help_text)

    def test_pin(self) -> None:
        uri = self.node(BAD, CLEAN)
        status, out, err = self.cli('pin', 'bad', '0', *self.host_args(uri))
        self.assertEqual((0, ''), (status, err))
        self.assertEqual(
            'bad: emulator and I/O threads -> 0\n'
            '  config emulator threads 0-1 -> 0: applied\n'
            '  config I/O thread 1     0-1 -> 0: applied\n'
            '  live   emulator threads 0-1 -> 0: applied\n'
            '  live   I/O thread 1     0-1 -> 0: applied\n', out)

    def test_pin_installed_command(self) -> None:
        # The smoke test of the console script. Each connection to the
        # test driver's file starts from the file: both runs pin the same.
        args = ['pin', 'bad', '0', *self.host_args(self.node(BAD, CLEAN))]
        result = command.run(*args)
        self.assertEqual((0, ''), (result.returncode, result.stderr))
        self.assertIn('live   I/O thread 1     0-1 -> 0: applied',
                      result.stdout)
        self.assertEqual(self.cli(*args),
                         (result.returncode, result.stdout, result.stderr))

    def test_pin_live_only_says_they_now_differ(self) -> None:
        uri = self.node(BAD)
        status, out, err = self.cli('pin', 'bad', '0', '--live',
                                    *self.host_args(uri))
        self.assertEqual(0, status)
        self.assertNotIn('config', out)
        self.assertIn('only the live pins of bad were changed', err)

    @ddt.data(
        (['bad', '1'], "pCPU 1 of the guest's own pinned vCPUs"),
        (['bad', '3'], 'pCPU 3 is dedicated to other guests (vCPU 0 of '
                       'clean'),
        (['bad', '9'], 'CPUs 9 are not online'),
        (['bad', 'x'], "CPUSET='x'"),
        (['nope', '0'], "Domain 'nope' not found"),
        (['bad'], 'pin needs DOMAIN and CPUSET'),
        (['--apply-audit', '--live'], '--apply-audit chooses'),
        (['bad', '0', '--dry-run'], '--dry-run goes with'))
    @ddt.unpack
    def test_pin_refusals_change_nothing(self, argv: list[str],
                                         words: str) -> None:
        uri = self.node(BAD, CLEAN)
        status, out, err = self.cli('pin', *argv, *self.host_args(uri))
        self.assertEqual((2, ''), (status, out), err)
        self.assertEqual(1, err.count('\n'), err)
        self.assertIn(words, err)

    def test_pin_stopped_guest(self) -> None:
        # Each connection to a test:/// file has its own state, so the
        # guest is stopped and pinned through one connection.
        uri = self.node(BAD)
        conn = testdriver.libvirt_domains.open_connection(uri, read_only=False)
        self.addCleanup(conn.close)
        conn.lookupByName('bad').destroy()
        parser = main.build_parser()
        args = parser.parse_args(['pin', 'bad', '0', '--live',
                                  *self.host_args(uri)])
        exc = self.assertRaises(exception.Invalid, pin.pin_one, args, conn)
        self.assertIn('--live was given but domain bad is not running',
                      str(exc))
        # With no option, a stopped guest's definition is changed.
        args = parser.parse_args(['pin', 'bad', '0', *self.host_args(uri)])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(0, pin.pin_one(args, conn))
        self.assertEqual('bad: emulator and I/O threads -> 0\n'
                         '  config emulator threads 0-1 -> 0: applied\n'
                         '  config I/O thread 1     0-1 -> 0: applied\n',
                         out.getvalue())

    def test_apply_audit_fixes_and_audits_again(self) -> None:
        uri = self.node(BAD, CLEAN)
        status, out, err = self.cli('pin', '--apply-audit',
                                    *self.host_args(uri))
        self.assertEqual((0, ''), (status, err))
        self.assertEqual(
            # pCPU 2 holds clean's emulator threads, which may share it.
            'bad: emulator and I/O threads -> 0,2,4-7 (the online pCPUs no '
            'guest has pinned a vCPU to)\n'
            '  config emulator threads 0-1 -> 0,2,4-7: applied\n'
            '  config I/O thread 1     0-1 -> 0,2,4-7: applied\n'
            '  live   emulator threads 0-1 -> 0,2,4-7: applied\n'
            '  live   I/O thread 1     0-1 -> 0,2,4-7: applied\n'
            'audit after the changes: no findings\n', out)

    def test_apply_audit_dry_run(self) -> None:
        uri = self.node(BAD)
        status, out, _ = self.cli('pin', '--apply-audit', '--dry-run',
                                  *self.host_args(uri))
        self.assertEqual(1, status)
        self.assertEqual('bad: emulator and I/O threads -> 0,2-7 (the online '
                         'pCPUs no guest has pinned a vCPU to) [dry run]\n',
                         out)

    def test_apply_audit_leaves_nova_guests_to_nova(self) -> None:
        guest = fakehost.domain_xml(
            'vm', testdriver.UUID_A, {0: '1', 1: '2'}, emulatorpin='1-2',
            nova={'name': 'vm', 'flavor': 'f', 'vcpus': 2, 'memory': 512,
                  'extra_specs': {'hw:cpu_policy': 'dedicated'}})
        status, out, _ = self.cli('pin', '--apply-audit',
                                  *self.host_args(self.node(guest)))
        self.assertEqual(1, status)
        self.assertIn('vm: not changed: Nova guest with hw:cpu_policy='
                      'dedicated, emulator threads policy none', out)
        self.assertIn('audit after the changes: 1 findings', out)

    # -- audit --shared-pool-affinity --------------------------------------

    def test_numa_local_share_guest(self) -> None:
        # --shared-pool-affinity numa reads the host's NUMA nodes.
        self.two_numa_nodes()
        local = fakehost.domain_xml(
            'local', testdriver.UUID_A, {0: '5', 1: '6'}, emulatorpin='4',
            iothreadpins={1: '4'}, nova=NOVA_SHARE)
        uri = self.node(local)
        args = [*self.host_args(uri), '--cpu-shared-set', '0,4']
        status, out, err = self.cli('audit', *args,
                                    '--shared-pool-affinity', 'numa')
        self.assertEqual((0, ''), (status, err), out)
        # As Nova places it (any), the guest belongs on the whole set.
        status, out, err = self.cli('audit', *args)
        self.assertEqual(1, status, out)
        self.assertIn('[compute] cpu_shared_set (0,4), but they may run on 4',
                      out)

    def two_numa_nodes(self) -> None:
        """Nodes 0 (CPUs 0-3) and 1 (4-7) in the fake sysfs."""
        for node, cpus in (('node0', '0-3'), ('node1', '4-7')):
            path = os.path.join(self.tree.sys_root, 'devices', 'system',
                                'node', node)
            os.makedirs(path)
            with open(os.path.join(path, 'cpulist'), 'w') as f:
                f.write(cpus + '\n')

    def test_apply_audit_numa_local_share_guest(self) -> None:
        # The whole shared set is wrong under shared_pool_affinity = numa:
        # pin moves the threads where the audit expects them.
        self.two_numa_nodes()
        guest = fakehost.domain_xml(
            'vm', testdriver.UUID_A, {0: '5', 1: '6'}, emulatorpin='0,4',
            iothreadpins={1: '0,4'}, nova=NOVA_SHARE)
        args = [*self.host_args(self.node(guest)), '--cpu-shared-set', '0,4',
                '--shared-pool-affinity', 'numa']
        status, out, _ = self.cli('pin', '--apply-audit', '--dry-run', *args)
        self.assertEqual(1, status)
        self.assertEqual(
            "vm: emulator and I/O threads -> 4 (the [compute] cpu_shared_set "
            "CPUs of the guest's NUMA nodes ([emulator_threads] "
            "shared_pool_affinity = numa)) [dry run]\n", out)
        status, out, err = self.cli('pin', '--apply-audit', *args)
        self.assertEqual((0, ''), (status, err), out)
        self.assertIn('live   emulator threads 0,4 -> 4: applied', out)
        self.assertTrue(out.endswith('audit after the changes: no findings\n'),
                        out)
