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

"""The extra spec through the API, as an admin sets it."""

from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc
from tempest.lib.common.utils import data_utils

from nova_emulator_threads_tempest_plugin.tests import base

KEY = 'hw:cpu_emulator_threads'
ALIAS = 'hw:emulator_threads_policy'


class EmulatorThreadsExtraSpecsTest(base.EmulatorThreadsTest):

    def extra_specs(self, flavor):
        return self.admin_flavors_client.list_flavor_extra_specs(
            flavor['id'])['extra_specs']

    def create_server_refused(self, flavor):
        """A boot the API refuses with 400; its message."""
        exc = self.assertRaises(
            lib_exc.BadRequest, self.admin_servers_client.create_server,
            name=data_utils.rand_name(name=self.__class__.__name__),
            imageRef=base.CONF.compute.image_ref, flavorRef=flavor['id'],
            networks='none')
        return exc.resp_body['message']

    @decorators.idempotent_id('5a0c2f53-6a8e-4d57-9b53-3e3b0b8ef101')
    def test_isolate_flavor(self):
        flavor = self.pinned_flavor(base.ISOLATE)
        self.assertEqual(base.ISOLATE, self.extra_specs(flavor))

    @decorators.idempotent_id('72f7ad31-c8f4-4672-8ed7-bd47da0b2e0f')
    def test_share_flavor(self):
        flavor = self.pinned_flavor(base.SHARE)
        self.assertEqual(base.SHARE, self.extra_specs(flavor))

    @decorators.idempotent_id('0f1d5b6e-3c77-4a59-8b93-2d1c7f3f5e02')
    def test_nova_name_is_an_alias(self):
        specs = {'hw:cpu_policy': 'dedicated', ALIAS: 'isolate'}
        flavor = self.pinned_flavor(specs)
        self.assertEqual(specs, self.extra_specs(flavor))

    @decorators.idempotent_id('c1b0a4a2-9d3e-4f0e-a7c6-6f1e2b8d4c03')
    def test_bad_value_is_refused(self):
        flavor = self.create_flavor(ram=128, vcpus=1, disk=1)
        exc = self.assertRaises(
            lib_exc.BadRequest,
            self.admin_flavors_client.set_flavor_extra_spec, flavor['id'],
            **{'hw:cpu_policy': 'dedicated', KEY: 'isolated'})
        self.assertEqual(
            "Invalid hw:cpu_emulator_threads='isolated': allowed values are "
            "'share', 'isolate'.", exc.resp_body['message'])
        # Nothing of the request was stored, not even the valid key.
        self.assertEqual({}, self.extra_specs(flavor))

    @decorators.idempotent_id('7e4c9d1f-2b6a-4f3c-9e8d-1a5b3c7d9e04')
    def test_conflicting_alias_is_refused_at_boot(self):
        flavor = self.pinned_flavor(dict(base.ISOLATE, **{ALIAS: 'share'}))
        message = self.create_server_refused(flavor)
        self.assertIn("hw:cpu_emulator_threads='isolate'", message)
        self.assertIn("hw:emulator_threads_policy='share'", message)

    @decorators.idempotent_id('3d8b2e6a-5f1c-4a9e-8b7d-6c2e4f1a3b05')
    def test_isolate_needs_dedicated_cpus(self):
        flavor = self.pinned_flavor({KEY: 'isolate'})
        message = self.create_server_refused(flavor)
        # Nova's own check and sentence: the CPU policy may come from the
        # image too, so only the boot can tell.
        self.assertEqual('An isolated CPU emulator threads option requires '
                         'a dedicated CPU policy option.', message)
