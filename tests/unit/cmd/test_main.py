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

"""The conventions every command shares, through ``main(argv)``."""

import contextlib
import io
import json
import os
import subprocess
import tempfile

import ddt
import fixtures
import yaml
from oslotest import base

from nova_emulator_threads import data
from nova_emulator_threads.cmd import main
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit.cmd import command
from tests.unit.virt import cases

#: A host of three cells of four CPUs, where Nova's fitter leaves guest
#: cell 2 of MULTI_CELL unpinned (see tests/functional/test_nova_fit_cache).
THREE_CELLS = cases.caps_xml(3, 4, 1, False, [8192] * 3, None)
MULTI_CELL = ['--vcpus', '4', '--memory-mb', '1536',
              '--cpu-dedicated-set', '0,2,4,9',
              '--extra-spec', 'hw:cpu_policy=dedicated',
              '--extra-spec', 'hw:numa_nodes=3',
              '--extra-spec', 'hw:numa_cpus.0=0',
              '--extra-spec', 'hw:numa_cpus.1=1',
              '--extra-spec', 'hw:numa_cpus.2=2,3',
              '--extra-spec', 'hw:numa_mem.0=512',
              '--extra-spec', 'hw:numa_mem.1=512',
              '--extra-spec', 'hw:numa_mem.2=512']


class CLITestCase(base.BaseTestCase):

    def cli(self, *argv: str, stdin: bytes | None = None
            ) -> tuple[int, str, str]:
        return command.main(*argv, stdin=stdin)

    def file(self, text: str | bytes) -> str:
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'f')
        with open(path, 'wb') as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return path

    def assertOneLineError(self, result: tuple[int, str, str],
                           *fragments: str) -> None:
        status, out, err = result
        self.assertEqual((2, ''), (status, out), err)
        self.assertEqual(1, err.count('\n'), err)
        self.assertNotIn('Traceback', err)
        for fragment in fragments:
            self.assertIn(fragment, err)


class TestVersionAndFormats(CLITestCase):

    def test_version(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stdout(err):
            exc = self.assertRaises(SystemExit, main.main, ['--version'])
        self.assertEqual(0, exc.code)
        self.assertEqual('nova-emulator-threads %s\n' % main.version(),
                         err.getvalue())

    def test_yaml_and_columns(self) -> None:
        status, out, _ = self.cli('plan', '--vcpus', '2', '--extra-spec',
                                  'hw:cpu_policy=dedicated', '-f', 'yaml',
                                  '-c', 'fits', '-c', 'placement')
        self.assertEqual(0, status)
        self.assertEqual({'fits': True, 'placement': {'PCPU': 2}},
                         yaml.safe_load(out))

    def test_value(self) -> None:
        status, out, _ = self.cli('plan', '--vcpus', '2', '--extra-spec',
                                  'hw:cpu_policy=dedicated', '-f', 'value',
                                  '-c', 'fits', '-c', 'iothreads')
        self.assertEqual((0, 'true\n1\n'), (status, out))

    def test_table_with_columns(self) -> None:
        status, out, _ = self.cli('plan', '--vcpus', '2', '-c', 'fits')
        self.assertEqual((0, 'fits  true\n'), (status, out))

    def test_unknown_column(self) -> None:
        self.assertOneLineError(self.cli('plan', '-c', 'fit'),
                                "'fit'", 'plans')


class TestWriteErrors(CLITestCase):

    def test_full_disk(self) -> None:
        with open('/dev/full', 'w') as full:
            self.useFixture(fixtures.MonkeyPatch('sys.stdout', full))
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main.main(['plan'])
        self.assertEqual(2, status)
        self.assertEqual('nova-emulator-threads plan: cannot write the '
                         'output: No space left on device\n', err.getvalue())

    def test_reader_gone(self) -> None:
        # "| head": the reader closes the pipe before the output ends. A
        # real pipe is used by the next test; here stdout is an object
        # that fails as a pipe without a reader does (a real pipe in this
        # process would meet eventlet's monkey-patching, which some test
        # modules load, and retry for ever).
        class ClosedPipe(io.StringIO):
            def write(self, text: str) -> int:
                raise BrokenPipeError(32, 'Broken pipe')

        self.useFixture(fixtures.MonkeyPatch('sys.stdout', ClosedPipe()))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main.main(['plan', '--density'])
        self.assertEqual(2, status)
        self.assertEqual('nova-emulator-threads plan: cannot write the '
                         'output: Broken pipe\n', err.getvalue())

    def test_installed_command_into_head(self) -> None:
        # The whole chain, as a shell runs it: no traceback, exit 2.
        result = subprocess.run(
            ['bash', '-c', '"$0" plan --density -f json | head -c1 '
             '>/dev/null; echo "${PIPESTATUS[0]}"', command.COMMAND],
            capture_output=True, text=True, timeout=120, check=False)
        self.assertNotIn('Traceback', result.stderr)
        self.assertIn(result.stdout.strip(), ('0', '2'))


class TestConfigFile(CLITestCase):

    def test_reads_compute_sets(self) -> None:
        conf = self.file('[compute]\ncpu_dedicated_set = 1-3\n'
                         'cpu_shared_set = 0\n')
        caps = self.file(cases.caps_xml(1, 4, 1, True, [4096], None))
        status, out, err = self.cli(
            'plan', '--host', caps, '--config-file', conf, '--vcpus', '1',
            '--extra-spec', 'hw:cpu_policy=dedicated',
            '--extra-spec', 'hw:cpu_emulator_threads=share', '-f', 'json')
        self.assertEqual(0, status, err)
        self.assertEqual([0], json.loads(out)['emulatorpin'])

    def test_flags_win(self) -> None:
        conf = self.file('[compute]\ncpu_dedicated_set = 1-3\n'
                         'cpu_shared_set = 0\n')
        caps = self.file(cases.caps_xml(1, 4, 1, True, [4096], None))
        status, out, err = self.cli(
            'plan', '--host', caps, '--config-file', conf,
            '--cpu-shared-set', '1', '--cpu-dedicated-set', '2-3',
            '--vcpus', '1', '--extra-spec', 'hw:cpu_policy=dedicated',
            '--extra-spec', 'hw:cpu_emulator_threads=share', '-f', 'json')
        self.assertEqual(0, status, err)
        self.assertEqual([1], json.loads(out)['emulatorpin'])

    def test_missing_file(self) -> None:
        self.assertOneLineError(
            self.cli('plan', '--config-file', '/nonexistent/nova.conf'),
            '--config-file', '/nonexistent/nova.conf')

    def test_bad_emulator_threads_value(self) -> None:
        conf = self.file('[emulator_threads]\nexplain_rejections = maybe\n')
        self.assertOneLineError(self.cli('plan', '--config-file', conf),
                                '--config-file', 'maybe')


class TestCompletion(CLITestCase):

    def test_bash_script(self) -> None:
        status, out, _ = self.cli('complete')
        self.assertEqual(0, status)
        self.assertIn('plan) COMPREPLY=($(compgen -W "', out)
        self.assertIn('--cpu-dedicated-set', out)
        self.assertIn('complete -o default -F _nova_emulator_threads '
                      'nova-emulator-threads', out)
        with tempfile.NamedTemporaryFile('w', suffix='.sh') as script:
            script.write(out)
            script.flush()
            subprocess.run(['bash', '-n', script.name], check=True,
                           timeout=60)


    def test_installed_command(self) -> None:
        # The smoke test of the console script: the script main() prints.
        result = command.run('complete')
        self.assertEqual((0, ''), (result.returncode, result.stderr))
        self.assertEqual(self.cli('complete'), (0, result.stdout, ''))


@ddt.ddt
class TestPlanInput(CLITestCase):

    def test_multi_cell_nova_bug_verdict(self) -> None:
        caps = self.file(THREE_CELLS)
        status, out, err = self.cli('plan', '--host', caps, *MULTI_CELL,
                                    '--cpu-shared-set', '1,3,5,10',
                                    '-f', 'json')
        self.assertEqual(1, status, err)
        result = json.loads(out)
        self.assertFalse(result['fits'])
        self.assertIn('Nova 34 places this flavor but not as asked: '
                      'dedicated vCPUs 2-3 of guest cell 2 go to host cell 0 '
                      'without pCPUs and float over its shared CPUs 1,3',
                      result['reason'])
        self.assertIn('This is a Nova bug', result['reason'])
        # What Nova does: the cells and pins it boots with.
        self.assertEqual([{'0': 4}, {'1': 9}, {}],
                         [c['cpu_pinning'] for c in result['cells']])
        self.assertIn('<vcpupin vcpu="2" cpuset="1,3"/>',
                      result['cputune_xml'])

    def test_multi_cell_without_shared_cpus(self) -> None:
        caps = self.file(THREE_CELLS)
        status, out, err = self.cli('plan', '--host', caps, *MULTI_CELL,
                                    '-f', 'json')
        self.assertEqual(1, status, err)
        reason = json.loads(out)['reason']
        self.assertIn('have no shared CPU there to float on', reason)
        self.assertIn('the boot fails', reason)

    def test_stdin(self) -> None:
        status, out, err = self.cli(
            'plan', '--host', '-', '--cpu-dedicated-set', '1-3',
            '--vcpus', '1', '--extra-spec', 'hw:cpu_policy=dedicated',
            '-f', 'value', '-c', 'fits',
            stdin=cases.caps_xml(1, 4, 1, True, [4096], None).encode())
        self.assertEqual((0, 'true\n'), (status, out), err)

    @ddt.data(('--cpu-dedicated-set', ',,,'),
              ('--cpu-shared-set', '^0'),
              ('--cpu-dedicated-set', '0-3,^0-3'))
    @ddt.unpack
    def test_cpu_sets_naming_no_cpu(self, flag: str, value: str) -> None:
        self.assertOneLineError(self.cli('plan', flag, value),
                                repr(value), 'names no CPU')

    def test_bundled_host_with_one_set(self) -> None:
        status, out, err = self.cli('plan', '--cpu-dedicated-set', '2-15',
                                    '--vcpus', '2', '--extra-spec',
                                    'hw:cpu_policy=dedicated', '-f', 'json')
        self.assertEqual(0, status, err)
        self.assertTrue(json.loads(out)['fits'])

    def test_unknown_hw_key(self) -> None:
        self.assertOneLineError(
            self.cli('plan', '--extra-spec',
                     'hw:cpu_emulator_thread=isolate'),
            "hw:cpu_emulator_thread='isolate'", 'not a known key',
            'did you mean hw:cpu_emulator_threads?')

    def test_numbered_and_foreign_keys_pass(self) -> None:
        status, _, err = self.cli(
            'plan', '--vcpus', '2', '--extra-spec', 'hw:numa_nodes=1',
            '--extra-spec', 'hw:numa_cpus.0=0,1',
            '--extra-spec', 'hw:numa_mem.0=2048',
            '--extra-spec', 'aggregate_instance_extra_specs:ssd=true')
        self.assertEqual(0, status, err)

    def test_junk_elements_refused_before_parsing(self) -> None:
        junk = b'<capabilities>' + b'<a/>' * (4 * 1024 * 1024 - 8) + \
            b'</capabilities>'
        self.assertOneLineError(self.cli('plan', '--host', self.file(junk)),
                                'tags is more than the 200000 allowed')

    def test_size_error_counts_the_file(self) -> None:
        size = data_size = 16 * 1024 * 1024 + 10
        path = self.file(b' ' * data_size)
        self.assertOneLineError(self.cli('plan', '--host', path),
                                '%d bytes is larger than the %d allowed'
                                % (size, 16 * 1024 * 1024))

    def test_density_rows_without_shared_set(self) -> None:
        status, out, err = self.cli(
            'plan', '--density', '--cpu-dedicated-set', '1-9', '-f', 'json')
        self.assertEqual(0, status, err)
        rows = {row['policy']: row for row in json.loads(out)['density']}
        # A loop, not cases: rows of the one report above.
        for policy in ('no policy', 'isolate', 'realtime, mask ^0'):
            self.assertIsNotNone(rows[policy]['guests'], rows[policy])
            self.assertNotIn('no cpu_shared_set', rows[policy]['note'] or '')
        self.assertEqual('the host has no cpu_shared_set',
                         rows['share + cpu_shared_set']['note'])
        # The same host fits isolate in a plain plan.
        isolate = guest_topology.instance_topology_from_flavor(
            1, 2048, {'hw:cpu_policy': 'dedicated',
                      'hw:cpu_emulator_threads': 'isolate'})
        host = capabilities.host_topology_from_caps(
            data.example_host_xml(), cpu_dedicated_set='1-9')
        self.assertIsNotNone(hardware.fit_instance_to_host(host, isolate))
