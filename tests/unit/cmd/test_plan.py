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

"""``nova-emulator-threads plan``."""

import json
import os
import typing

import ddt
import fixtures

from nova_emulator_threads.cmd import plan
from nova_emulator_threads.virt.libvirt import bandwidth
from nova_emulator_threads.virt.libvirt import cputune_reader
from tests.unit import base
from tests.unit.cmd import command
from tests.unit.virt import cases


class TestPlanCommand(base.TestCase):

    def assertOneLineError(self, result: tuple[int, str, str],
                           *fragments: str) -> None:
        status, out, err = result
        self.assertEqual(2, status, err)
        self.assertEqual('', out)
        lines = err.strip().splitlines()
        self.assertEqual(1, len(lines), err)
        self.assertNotIn('Traceback', err)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def plan(self, *argv: str) -> tuple[int, str, str]:
        return command.main('plan', *argv)

    def test_demo_table_installed_command(self) -> None:
        # The smoke test of the console script: the README's demo, run as
        # an operator runs it. The command must be installed (tox and
        # 'make test' install the package); missing, it is a failure.
        self.assertTrue(os.access(command.COMMAND, os.X_OK),
                        '%s is not installed' % command.COMMAND)
        result = command.run('plan')
        self.assertEqual(0, result.returncode, result.stderr)
        header = result.stdout.splitlines()[1].split()
        self.assertEqual([name for name, *_ in plan.EXAMPLE_FLAVORS], header)
        self.assertIn('PCPU=5', result.stdout)  # isolate: 4 vCPUs + 1

    def test_demo_json(self) -> None:
        status, out, err = self.plan('--format', 'json')
        self.assertEqual(0, status, err)
        plans = {p['flavor']: p for p in json.loads(out)['plans']}
        isolate = plans['isolate']
        self.assertEqual({'PCPU': 5}, isolate['placement'])
        self.assertEqual({'PCPU': 1}, isolate['overhead'])
        reserved = isolate['cells'][0]['cpuset_reserved']
        self.assertEqual(reserved, isolate['emulatorpin'])
        self.assertNotIn(reserved[0],
                         isolate['cells'][0]['cpu_pinning'].values())
        self.assertEqual([0, 10, 20, 30], plans['share']['emulatorpin'])
        self.assertEqual(
            sorted(plans['dedicated']['cells'][0]['cpu_pinning'].values()),
            plans['dedicated']['emulatorpin'])

    def test_json_contract_for_one_flavor(self) -> None:
        path = self.useFixture(_CapsFile(cases.caps_xml(
            1, 4, 1, True, [4096], None))).path
        status, stdout, err = self.plan(
            '--host', path, '--cpu-dedicated-set', '1-3',
            '--cpu-shared-set', '0', '--vcpus', '2',
            '--extra-spec', 'hw:cpu_policy=dedicated',
            '--extra-spec', 'hw:cpu_emulator_threads=isolate',
            '--format', 'json')
        self.assertEqual(0, status, err)
        out = json.loads(stdout)
        self.assertEqual(
            {'fits', 'reason', 'emulator_threads_policy', 'cells',
             'emulatorpin', 'overhead', 'placement', 'cputune_xml',
             'emulator_pcpu_siblings', 'emulator_pcpu_sibling_of',
             'warnings', 'iothreads'},
            set(out))
        self.assertEqual('allow', out['emulator_pcpu_siblings'])
        # No SMT on this host: no sibling, no warning.
        self.assertEqual([], out['emulator_pcpu_sibling_of'])
        self.assertEqual([], out['warnings'])
        self.assertEqual(
            [{'guest_cell': 0, 'host_cell': 0,
              'cpu_pinning': {'0': 1, '1': 2}, 'cpuset_reserved': [3]}],
            out['cells'])
        self.assertEqual([3], out['emulatorpin'])
        self.assertEqual({'PCPU': 3}, out['placement'])
        self.assertIn('<emulatorpin cpuset="3"/>', out['cputune_xml'])
        # The <iothreadpin> refers to the guest's one I/O thread.
        self.assertEqual(1, out['iothreads'])
        self.assertIn('iothread="1"', out['cputune_xml'])
        self.assertTrue(out['fits'])
        self.assertIsNone(out['reason'])

    def test_no_fit_says_why(self) -> None:
        path = self.useFixture(_CapsFile(cases.caps_xml(
            1, 4, 1, True, [4096], None))).path
        status, stdout, err = self.plan(
            '--host', path, '--cpu-dedicated-set', '0-3',
            '--pinned', '0', '--vcpus', '3', '--format', 'json',
            '--extra-spec', 'hw:cpu_policy=dedicated',
            '--extra-spec', 'hw:emulator_threads_policy=isolate')
        # Exit status 1: the command worked, the flavor does not fit.
        self.assertEqual(1, status, err)
        out = json.loads(stdout)
        self.assertFalse(out['fits'])
        self.assertEqual(
            'not enough free pCPUs on host cell 0 for guest cell 0 (needs 4 '
            'incl. 1 for emulator threads; 3 of its 4 are free)',
            out['reason'])

    def test_unknown_policy_value(self) -> None:
        self.assertOneLineError(
            self.plan('--vcpus', '2', '--extra-spec',
                      'hw:cpu_policy=dedicated', '--extra-spec',
                      'hw:cpu_emulator_threads=isolated'),
            'hw:cpu_emulator_threads', "'isolated'", 'share', 'isolate')

    def test_isolate_without_dedicated(self) -> None:
        self.assertOneLineError(
            self.plan('--vcpus', '2', '--extra-spec',
                      'hw:cpu_emulator_threads=isolate'),
            'hw:cpu_emulator_threads', 'hw:cpu_policy')

    def test_conflicting_alias(self) -> None:
        self.assertOneLineError(
            self.plan('--vcpus', '2', '--extra-spec',
                      'hw:cpu_policy=dedicated', '--extra-spec',
                      'hw:cpu_emulator_threads=isolate', '--extra-spec',
                      'hw:emulator_threads_policy=share'),
            'hw:cpu_emulator_threads', 'hw:emulator_threads_policy')

    def test_malformed_cpu_range(self) -> None:
        self.assertOneLineError(
            self.plan('--cpu-dedicated-set', '1-x'),
            '[compute] cpu_dedicated_set', "'1-x'")

    def test_unreadable_host_xml(self) -> None:
        self.assertOneLineError(
            self.plan('--host', '/nonexistent.xml'),
            '/nonexistent.xml', 'No such file')
        path = self.useFixture(_CapsFile('<capabilities>')).path
        self.assertOneLineError(self.plan('--host', path),
                                path, 'not well-formed XML')

    def test_bad_extra_spec_syntax(self) -> None:
        self.assertOneLineError(self.plan('--extra-spec', 'novalue'),
                                'novalue', 'KEY=VALUE')

    def test_bad_option_value(self) -> None:
        self.assertOneLineError(self.plan('--vcpus', 'two'), '--vcpus')
        self.assertOneLineError(self.plan('--vcpus', '0'), '--vcpus')


class TestPlanEmulatorPCPUSiblings(base.TestCase):
    """The emulator pCPU's core, on the bundled SMT host."""

    ISOLATE_1 = ('--vcpus', '1', '--extra-spec', 'hw:cpu_policy=dedicated',
                 '--extra-spec', 'hw:cpu_emulator_threads=isolate')

    def plan(self, *args: str) -> tuple[int, str, str]:
        return command.main('plan', *args)

    def test_allow_warns_about_the_sibling(self) -> None:
        code, out, _err = self.plan(*self.ISOLATE_1, '--format', 'json')
        self.assertEqual(0, code)
        result = json.loads(out)
        self.assertEqual('allow', result['emulator_pcpu_siblings'])
        (vcpu_pcpu,) = result['cells'][0]['cpu_pinning'].values()
        (emulator,) = result['emulatorpin']
        self.assertEqual([{'emulator_pcpu': emulator, 'vcpu': 0,
                           'vcpu_pcpu': vcpu_pcpu}],
                         result['emulator_pcpu_sibling_of'])
        self.assertEqual(
            ["the emulator threads' pCPU %d is an SMT sibling of pCPU %d, "
             "where vCPU 0 runs: they share the core; [emulator_threads] "
             "emulator_pcpu_siblings = avoid keeps them off the vCPUs' "
             "cores" % (emulator, vcpu_pcpu)], result['warnings'])
        code, out, _err = self.plan(*self.ISOLATE_1)
        self.assertIn('sibling of vCPU 0 (pCPU %d)' % vcpu_pcpu, out)
        self.assertIn('warning: flavor: the emulator threads', out)

    def test_avoid_shows_another_core(self) -> None:
        code, out, _err = self.plan(*self.ISOLATE_1, '--format', 'json',
                                    '--emulator-pcpu-siblings', 'avoid')
        self.assertEqual(0, code)
        result = json.loads(out)
        self.assertEqual('avoid', result['emulator_pcpu_siblings'])
        self.assertEqual([], result['emulator_pcpu_sibling_of'])
        self.assertEqual([], result['warnings'])
        # On the bundled host a core is (n, n + 20).
        (vcpu_pcpu,) = result['cells'][0]['cpu_pinning'].values()
        (emulator,) = result['emulatorpin']
        self.assertNotEqual(vcpu_pcpu % 20, emulator % 20)
        code, out, _err = self.plan(*self.ISOLATE_1,
                                    '--emulator-pcpu-siblings', 'avoid')
        self.assertIn('emulator core       no vCPU', out)
        self.assertNotIn('warning', out)

    def test_avoid_no_fit_says_why(self) -> None:
        # Only core (1, 21) is free.
        code, out, _err = self.plan(
            *self.ISOLATE_1, '--format', 'json', '--cpu-dedicated-set',
            '1,21', '--emulator-pcpu-siblings', 'avoid')
        # Exit status 1: the command worked, the flavor does not fit.
        self.assertEqual(1, code)
        result = json.loads(out)
        self.assertFalse(result['fits'])
        self.assertIn('emulator_pcpu_siblings = avoid forbids',
                      result['reason'])

    def test_avoid_read_from_config_file(self) -> None:
        conf = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(conf, 'w') as f:
            f.write('[compute]\ncpu_dedicated_set = 1,21\n'
                    '[emulator_threads]\nemulator_pcpu_siblings = avoid\n')
        code, out, _err = self.plan(*self.ISOLATE_1, '--format', 'json',
                                    '--config-file', conf)
        self.assertEqual(1, code)
        result = json.loads(out)
        self.assertEqual('avoid', result['emulator_pcpu_siblings'])
        # The flag wins over the file.
        code, out, _err = self.plan(*self.ISOLATE_1, '--format', 'json',
                                    '--config-file', conf,
                                    '--emulator-pcpu-siblings', 'allow')
        self.assertEqual('allow', json.loads(out)['emulator_pcpu_siblings'])

    def test_bad_value_is_one_line(self) -> None:
        status, out, err = self.plan('--emulator-pcpu-siblings', 'never')
        self.assertEqual(2, status)
        self.assertEqual('', out)
        lines = err.strip().splitlines()
        self.assertEqual(1, len(lines), err)
        self.assertIn("--emulator-pcpu-siblings: invalid choice: 'never'",
                      lines[0])


class _CapsFile(fixtures.Fixture):
    """A capabilities XML file in a temporary directory."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def _setUp(self) -> None:
        directory = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(directory, 'caps.xml')
        with open(self.path, 'w') as f:
            f.write(self.text)


@ddt.ddt
class TestSharedPoolPlan(base.TestCase):
    """``plan`` with the shared emulator pool options, in-process."""

    #: One host cell per socket: CPUs 0-3 and 4-7; 0 and 4 shared.
    HOST = ('--cpu-dedicated-set', '1-3,5-7', '--cpu-shared-set', '0,4')
    SHARE = ('--extra-spec', 'hw:cpu_policy=dedicated',
             '--extra-spec', 'hw:cpu_emulator_threads=share')

    def setUp(self) -> None:
        super().setUp()
        self.caps = self.useFixture(_CapsFile(cases.caps_xml(
            2, 4, 1, True, [4096, 4096], None))).path

    def main(self, *argv: str) -> tuple[int, str, str]:
        return command.main('plan', '--host', self.caps, *argv)

    def plan_json(self, *argv: str) -> dict[str, typing.Any]:
        status, out, err = self.main(*self.HOST, '--vcpus', '2',
                                     '--format', 'json', *argv)
        self.assertEqual(0, status, err)
        result: dict[str, typing.Any] = json.loads(out)
        return result

    def test_defaults_are_novas(self) -> None:
        out = self.plan_json(*self.SHARE)
        self.assertEqual({'PCPU': 2}, out['placement'])
        self.assertEqual({}, out['overhead'])
        self.assertEqual([0, 4], out['emulatorpin'])
        self.assertNotIn('emulator_quota', out['cputune_xml'])

    def test_numa_accounted_capped(self) -> None:
        out = self.plan_json(*self.SHARE, '--shared-pool-affinity', 'numa',
                             '--shared-pool-vcpus', '1',
                             '--shared-pool-quota',
                             '--cpu-allocation-ratio', '2')
        self.assertEqual({'VCPU': 1}, out['overhead'])
        self.assertEqual({'PCPU': 2, 'VCPU': 1}, out['placement'])
        (cell,) = out['cells']
        local = [0] if cell['host_cell'] == 0 else [4]
        self.assertEqual(local, out['emulatorpin'])
        tune = cputune_reader.parse_cputune(out['cputune_xml'])
        self.assertEqual(frozenset(local), tune.emulatorpin)
        self.assertEqual(bandwidth.EmulatorBandwidth(100000, 50000),
                         tune.emulator_bandwidth)

    def test_table_shows_the_quota(self) -> None:
        status, out, err = self.main(*self.HOST, '--vcpus', '2', *self.SHARE,
                                     '--shared-pool-vcpus', '1',
                                     '--shared-pool-quota')
        self.assertEqual(0, status, err)
        self.assertIn('25000 us per 100000 us', out)
        self.assertIn('PCPU=2, VCPU=1', out)

    def test_no_shared_pool_is_no_fit(self) -> None:
        status, out, err = self.main(
            '--cpu-dedicated-set', '0-7', '--vcpus', '2', '--format',
            'json', *self.SHARE, '--shared-pool-vcpus', '1')
        self.assertEqual(1, status, err)
        result = json.loads(out)
        self.assertFalse(result['fits'])
        self.assertIn('no shared CPUs, so no VCPU inventory',
                      result['reason'])
        # A realtime share guest, whatever the options.
        status, out, err = self.main(
            '--cpu-dedicated-set', '0-7', '--vcpus', '2', '--format',
            'json', *self.SHARE, '--extra-spec', 'hw:cpu_realtime=yes')
        self.assertIn("needs [compute] cpu_shared_set",
                      json.loads(out)['reason'])

    @ddt.data((('--shared-pool-vcpus', '-1'), '--shared-pool-vcpus=-1'),
              (('--cpu-allocation-ratio', '0'), '--cpu-allocation-ratio=0.0'),
              (('--shared-pool-affinity', 'socket'), '--shared-pool-affinity'))
    @ddt.unpack
    def test_bad_values(self, argv: tuple[str, ...], fragment: str) -> None:
        status, out, err = self.main(*argv)
        self.assertEqual((2, ''), (status, out), argv)
        self.assertEqual(1, len(err.strip().splitlines()), err)
        self.assertIn(fragment, err)
