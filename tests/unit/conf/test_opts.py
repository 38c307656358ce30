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

"""The ``[emulator_threads]`` options and the sample configuration."""

import io
import os

import nova.conf
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_config import generator

from nova_emulator_threads.conf import opts
from tests.unit import base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SAMPLE = os.path.join(ROOT, 'etc', 'nova-emulator-threads.conf.sample')
GENERATOR_CONF = os.path.join(
    ROOT, 'etc', 'nova-emulator-threads-config-generator.conf')


class TestOpts(base.TestCase):

    def test_list_opts(self) -> None:
        ((group, options),) = opts.list_opts()
        self.assertEqual('emulator_threads', group.name)
        self.assertEqual(['allow_untested_nova', 'emulator_pcpu_siblings',
                          'explain_rejections', 'shared_pool_affinity',
                          'shared_pool_quota', 'shared_pool_vcpus'],
                         sorted(opt.name for opt in options))
        # A loop, not cases: every option of the one list above.
        for opt in options:
            # Real help: more than a restatement of the name.
            self.assertGreater(len(opt.help), 200, opt.name)

    def test_registered_on_novas_conf(self) -> None:
        # Nova reads cfg.CONF; our group lives in the same nova.conf.
        self.assertIs(cfg.CONF, nova.conf.CONF)
        self.assertFalse(cfg.CONF.emulator_threads.allow_untested_nova)
        self.assertTrue(cfg.CONF.emulator_threads.explain_rejections)
        # Nova's choice unless set.
        self.assertEqual('allow',
                         cfg.CONF.emulator_threads.emulator_pcpu_siblings)

    def test_emulator_pcpu_siblings_values(self) -> None:
        conf = self.useFixture(config_fixture.Config())
        conf.config(emulator_pcpu_siblings='avoid', group='emulator_threads')
        self.assertEqual('avoid',
                         cfg.CONF.emulator_threads.emulator_pcpu_siblings)
        self.assertRaises(ValueError, conf.config,
                          emulator_pcpu_siblings='never',
                          group='emulator_threads')

    def test_shared_pool_defaults_are_novas(self) -> None:
        options = cfg.CONF.emulator_threads
        self.assertEqual(('any', 0, False), (
            options.shared_pool_affinity, options.shared_pool_vcpus,
            options.shared_pool_quota))

    def test_sample_is_up_to_date(self) -> None:
        conf = cfg.ConfigOpts()
        generator.register_cli_opts(conf)
        conf(['--config-file', GENERATOR_CONF])
        out = io.StringIO()
        generator.generate(conf, output_file=out)
        with open(SAMPLE) as sample:
            self.assertEqual(
                sample.read(), out.getvalue(),
                'etc/nova-emulator-threads.conf.sample is out of date: '
                'run tox -e genconfig')
