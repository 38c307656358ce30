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

"""The all-in-one cloud's configuration, without starting anything.

The cloud itself runs in the all-in-one tier (``make all-in-one``); this
checks what that tier would only show after minutes of bring-up: every
template renders, and renders the settings the extension needs.
"""

import configparser
import hashlib
import os
import pathlib
import struct
import sys
from unittest import mock

import ddt
import fixtures
from oslotest import base

# aio.py imports its package from its own directory, as a script does.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / 'tools'
                       / 'all-in-one'))
from allinone import configs  # noqa: E402
from allinone import layout  # noqa: E402
from allinone import processes  # noqa: E402
from allinone import services  # noqa: E402

#: Every template of the tree, by file name.
TEMPLATES = sorted(path.name for path in layout.TEMPLATES.iterdir())


@ddt.ddt
class AllInOneConfigTestCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.out = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        self.values = configs.settings()

    def test_postgresql_lives_where_postgres_can_reach_it(self):
        # The tree may be mode 0700 (a mktemp -d clone, root's home):
        # PostgreSQL's data and socket are outside it, in the postgres
        # user's home, one directory per tree.
        self.assertEqual(pathlib.Path('/var/lib/postgresql'),
                         layout.POSTGRESQL.parent)
        self.assertNotIn(layout.ROOT, layout.POSTGRESQL.parents)
        self.assertEqual(layout.POSTGRESQL,
                         services.postgresql_data_dir().parent)
        self.assertEqual(layout.POSTGRESQL,
                         services.postgresql_socket_dir().parent)
        # Named after the tree: another clone gets another directory.
        self.assertEqual(
            'nova-emulator-threads-aio-%s' % hashlib.sha256(
                str(layout.ROOT).encode()).hexdigest()[:12],
            layout.POSTGRESQL.name)

    def render(self, template, **extra):
        target = self.out / template
        configs.render(template, target, dict(self.values, **extra))
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(target.read_text())
        return parser

    def test_templates_are_found(self):
        self.assertIn('nova.conf', TEMPLATES)

    @ddt.data(*TEMPLATES)
    def test_every_template_renders(self, template):
        hosts = self._hosts(4)
        extra = {
            'host': hosts[0].name, 'cpu_sets': 'cpu_dedicated_set = 0-3',
            'virt_type': 'kvm', 'libvirt_uri': hosts[0].libvirt_uri,
            'image_id': 'i', 'flavor_id': 'f', 'compute_count': 2,
            'libvirt_uris': 'a:b', 'share_host': 'h',
            'share_host_cpu_shared_set': '0', 'fault_command': 'aio.py',
            'nova_manage_command': 'nova-manage'}
        target = self.out / template
        configs.render(template, target, dict(self.values, **extra))
        self.assertNotIn('{{', target.read_text(), template)
        # Passwords are inside: only root may read them.
        self.assertEqual(0o600, target.stat().st_mode & 0o777)

    def test_unknown_placeholder_names_template_and_name(self):
        template = layout.TEMPLATES / 'nova.conf'
        with mock.patch.object(layout, 'TEMPLATES', self.out):
            (self.out / 'x.conf').write_text(
                template.read_text() + '\nkey = {{no_such_value}}\n')
            exc = self.assertRaises(layout.Failed, configs.render, 'x.conf',
                                    self.out / 'out', self.values)
        self.assertEqual('template x.conf uses {{no_such_value}}, which '
                         'aio.py does not define', str(exc))

    def test_scheduler_runs_our_filter_before_nova_numa_filter(self):
        nova = self.render('nova.conf')
        enabled = nova['filter_scheduler']['enabled_filters'].split(',')
        self.assertLess(enabled.index('EmulatorThreadsFilter'),
                        enabled.index('NUMATopologyFilter'))
        # A multi-valued option: configparser keeps the last one.
        text = (self.out / 'nova.conf').read_text()
        self.assertIn('available_filters = nova_emulator_threads.scheduler.'
                      'filters.EmulatorThreadsFilter', text)
        self.assertIn('available_filters = nova.scheduler.filters.'
                      'all_filters', text)
        self.assertEqual('true', nova['workarounds'][
            'disable_fallback_pcpu_query'])

    def test_compute_hosts_get_our_driver_and_no_database(self):
        compute = self.render('nova-compute.conf', host='aio-compute1',
                              cpu_sets='cpu_dedicated_set = 0,1',
                              virt_type='qemu', libvirt_uri='qemu:///x')
        self.assertEqual('emulator_threads.LibvirtDriver',
                         compute['DEFAULT']['compute_driver'])
        self.assertEqual('0,1', compute['compute']['cpu_dedicated_set'])
        nova = self.render('nova.conf')
        # A loop, not cases: two sections of the one file rendered above.
        for section in ('database', 'api_database'):
            self.assertFalse(nova.has_section(section), section)
        controller = self.render('nova-controller.conf')
        self.assertIn(self.values['db_password'],
                      controller['api_database']['connection'])

    def test_everything_listens_on_loopback(self):
        # A loop, not cases: every URL of the one layout.
        for url in layout.URLS.values():
            self.assertTrue(url.startswith('http://127.0.0.1:'), url)
        rabbit = (self.out / 'r')
        configs.render('rabbitmq.conf', rabbit, self.values)
        self.assertIn('listeners.tcp.default = 127.0.0.1:%d'
                      % layout.PORTS['rabbitmq'], rabbit.read_text())
        self.assertEqual('127.0.0.1',
                         services.rabbitmq_env()['ERL_EPMD_ADDRESS'])

    @staticmethod
    def _hosts(cpus):
        with mock.patch.object(os, 'sched_getaffinity', autospec=True,
                               return_value=set(range(cpus))):
            return layout.compute_hosts()

    def test_two_cpus_make_an_isolate_host_and_a_share_host(self):
        isolate, share = self._hosts(2)
        self.assertEqual(('0,1', None), (isolate.cpu_dedicated_set,
                                         isolate.cpu_shared_set))
        self.assertEqual(('1', '0'), (share.cpu_dedicated_set,
                                      share.cpu_shared_set))
        self.assertNotEqual(isolate.libvirt_uri, share.libvirt_uri)

    def test_one_cpu_is_refused(self):
        exc = self.assertRaises(layout.Failed, self._hosts, 1)
        self.assertIn('needs at least 2 CPUs', str(exc))

    def test_boot_image_is_a_partitioned_disk(self):
        disk = services.boot_image()
        self.assertEqual(1024 * 1024, len(disk))
        self.assertEqual(b'\x55\xaa', disk[510:512])
        status, _chs, kind, _end, start, sectors = struct.unpack(
            '<B3sB3sII', disk[446:462])
        self.assertEqual((0x80, 0x83), (status, kind))
        self.assertEqual(len(disk) // 512, start + sectors)


class ProcessesTestCase(base.BaseTestCase):
    """Services as `up` starts, watches and stops them (real processes)."""

    def setUp(self):
        super().setUp()
        tree = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        for name in ('LOGS', 'RUN'):
            (tree / name).mkdir()
            self.useFixture(fixtures.MonkeyPatch(
                'allinone.layout.%s' % name, tree / name))
        self.useFixture(fixtures.MonkeyPatch('allinone.layout.ROOT', tree))

    def spawn(self, name, script):
        pid = processes.spawn(name, ['sh', '-c', script])
        self.addCleanup(processes.terminate, [pid], 9)
        return pid

    def spawn_sleep(self, name):
        # Not through sh: its exec would race the environment check.
        pid = processes.spawn(name, ['sleep', '60'])
        self.addCleanup(processes.terminate, [pid], 9)
        return pid

    def test_a_service_that_dies_is_named_with_its_log(self):
        self.spawn('nova-compute-x', 'echo starting; echo boom >&2; exit 3')
        exc = self.assertRaises(
            layout.Failed, processes.wait_for, 'its inventory',
            lambda: False, ['nova-compute-x'], 10)
        log = layout.LOGS / 'nova-compute-x.log'
        self.assertEqual('nova-compute-x exited while waiting for its '
                         'inventory; last lines of %s:\n    starting\n'
                         '    boom' % log, str(exc))

    def test_a_service_that_never_answers_is_named(self):
        self.spawn('keystone', 'echo listening; exec sleep 60')
        exc = self.assertRaises(
            layout.Failed, processes.wait_for, 'Keystone on port 1',
            lambda: False, ['keystone'], 1)
        self.assertIn('keystone did not come up within 1 s (waiting for '
                      'Keystone on port 1)', str(exc))
        self.assertTrue(str(exc).endswith('    listening'), str(exc))

    def test_down_stops_only_what_up_started(self):
        pid = self.spawn_sleep('glance')
        self.assertEqual(pid, processes.read_pid(layout.RUN / 'glance.pid'))
        self.assertTrue(processes.ours(pid))
        # This test's own process is not the cloud's.
        self.assertFalse(processes.ours(os.getpid()))
        self.assertTrue(processes.terminate([pid]))
        self.assertFalse(processes.running(pid))
