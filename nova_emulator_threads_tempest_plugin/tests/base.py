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

import time

from tempest import config
from tempest.api.compute import base
from tempest.common import waiters
from tempest.lib.common.utils import data_utils
from tempest.lib.common.utils import test_utils

from nova_emulator_threads import cpuset
from nova_emulator_threads_tempest_plugin.services import compute_host

CONF = config.CONF

ISOLATE = {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'}
SHARE = {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'share'}
# Threads neither libvirt nor Nova places: KVM starts them from a vCPU
# thread, in that vCPU's cgroup (the audit lists them, unjudged).
UNPLACED_KINDS = ('vcpu', 'kvm')


class EmulatorThreadsTest(base.BaseV2ComputeAdminTest):
    """Flavors, servers, placement and the compute hosts, as an admin."""

    # Nova validates flavor extra specs from 2.86 on; a server's "host"
    # needs 2.74.
    min_microversion = '2.86'
    max_microversion = 'latest'

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.placement_client = cls.os_admin.placement_client
        cls.providers_client = cls.os_admin.resource_providers_client

    # -- flavors and servers --------------------------------------------

    def pinned_flavor(self, extra_specs, vcpus=1):
        flavor = self.create_flavor(ram=128, vcpus=vcpus, disk=1)
        self.admin_flavors_client.set_flavor_extra_spec(
            flavor['id'], **extra_specs)
        return flavor

    #: True in the tests that boot share servers on the share host.
    needs_share_host = False

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if cls.needs_share_host and not CONF.emulator_threads.share_host:
            raise cls.skipException(
                '[emulator_threads] share_host is not set: no compute host '
                'with a cpu_shared_set to boot a share server on')

    def create(self, flavor, host=None):
        """Ask for a server with no network (no wait); it is deleted (and
        waited for) at the end.

        It is booted as the test's project member, as users boot, unless
        it asks for a host, which only an admin may.
        :returns: its id
        """
        kwargs = {'host': host} if host else {}
        server = self._servers_client(host).create_server(
            name=data_utils.rand_name(
                prefix=CONF.resource_name_prefix,
                name=self.__class__.__name__),
            imageRef=CONF.compute.image_ref, flavorRef=flavor['id'],
            networks='none', **kwargs)['server']
        self.addCleanup(self.delete_and_wait, server['id'])
        return server['id']

    def _servers_client(self, host):
        return self.admin_servers_client if host else self.servers_client

    def boot(self, flavor, host=None, status='ACTIVE'):
        """A server as create() asks for it, once it has the status.

        :returns: the server as an admin shows it (with its host)
        """
        server_id = self.create(flavor, host)
        waiters.wait_for_server_status(self._servers_client(host), server_id,
                                       status,
                                       raise_on_error=status != 'ERROR')
        return self.show(server_id)

    def show(self, server_id):
        return self.admin_servers_client.show_server(server_id)['server']

    def boot_refused(self, flavor, host=None):
        """A boot the scheduler refuses: ERROR, with a fault its user can
        read, and nothing claimed. The server is deleted again.
        """
        refused = self.boot(flavor, host=host, status='ERROR')
        self.assertIn('No valid host was found',
                      refused.get('fault', {}).get('message', ''),
                      refused['id'])
        self.assertEqual({}, self.allocated(refused['id']))
        self.delete_and_wait(refused['id'])

    def delete_and_wait(self, server_id):
        """Delete a server; wait until placement has its resources back.

        Nova removes the allocation after the server is gone.
        """
        test_utils.call_and_ignore_notfound_exc(
            self.admin_servers_client.delete_server, server_id)
        # A server in ERROR stays so while its host deletes it.
        waiters.wait_for_server_termination(
            self.admin_servers_client, server_id, ignore_error=True)
        self.wait_until('placement to free the allocation of %s' % server_id,
                        lambda: not self.allocated(server_id))

    def wait_until(self, what, condition):
        """Poll until condition() is true, for up to build_timeout."""
        deadline = time.monotonic() + CONF.compute.build_timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail('timed out after %d s waiting for %s' % (
                    CONF.compute.build_timeout, what))
            time.sleep(CONF.compute.build_interval)

    # -- placement ------------------------------------------------------

    def allocated(self, server_id):
        """Resource class -> amount the server holds, over providers."""
        totals = {}
        allocations = self.placement_client.list_allocations(
            server_id)['allocations']
        for allocation in allocations.values():
            for resource, amount in allocation['resources'].items():
                totals[resource] = totals.get(resource, 0) + amount
        return totals

    def providers(self):
        return self.providers_client.list_resource_providers()[
            'resource_providers']

    def usages(self):
        """Provider name -> its non-zero usages."""
        return {
            provider['name']: {
                resource: used for resource, used in
                self.providers_client.list_resource_provider_usages(
                    provider['uuid'])['usages'].items() if used}
            for provider in self.providers()}

    def provider(self, name):
        """The resource provider of the compute host of that name."""
        (provider,) = [p for p in self.providers() if p['name'] == name]
        return provider

    def free(self, provider, resource_class='PCPU'):
        """How much of the resource class the provider has left."""
        inventory = self.providers_client.list_resource_provider_inventories(
            provider['uuid'])['inventories'].get(resource_class)
        if inventory is None:
            return 0
        used = self.providers_client.list_resource_provider_usages(
            provider['uuid'])['usages'].get(resource_class, 0)
        return int((inventory['total'] - inventory['reserved'])
                   * inventory['allocation_ratio']) - used

    def room(self, flavor):
        """How many isolate servers of the flavor placement has room for.

        Each takes its vCPUs and the emulator threads' pCPU.
        """
        need = flavor['vcpus'] + 1
        return sum(self.free(p) // need for p in self.providers())

    def room_or_skip(self, flavor):
        """room(flavor); the test is skipped when there is none."""
        room = self.room(flavor)
        if not room:
            raise self.skipException('no compute host has %d free pCPUs for '
                                     'one isolate server'
                                     % (flavor['vcpus'] + 1))
        return room

    # -- the compute host -----------------------------------------------

    @staticmethod
    def host_client(host):
        """The host-side client of a compute host.

        None when the configuration names no libvirt URI for it.
        """
        uri = CONF.emulator_threads.libvirt_uris.get(host)
        if not uri:
            return None
        return compute_host.ComputeHostClient(
            host, uri, CONF.emulator_threads.audit_command)

    def compute_host(self, server):
        """The host-side client of the server's compute host.

        Skips the rest of the test when there is none.
        """
        host = self.host_client(server['OS-EXT-SRV-ATTR:host'])
        if host is None:
            raise self.skipException(
                'host-side checks skipped: [emulator_threads] libvirt_uris '
                'has no libvirt URI for compute host %s'
                % server['OS-EXT-SRV-ATTR:host'])
        return host

    def audited_guest(self, host, server, cpu_shared_set=None):
        """The audit's entry for the server's guest.

        The audit must not report anything about it.
        """
        _status, report = host.audit(cpu_shared_set)
        guest = [g for g in report['guests'] if g['uuid'] == server['id']]
        self.assertEqual(1, len(guest), 'the audit of %s lists %d guests '
                         'with uuid %s' % (host.host, len(guest),
                                           server['id']))
        findings = [f for f in report['findings']
                    if f['domain'] == guest[0]['name']]
        self.assertEqual([], findings)
        return guest[0]

    def assert_threads_on(self, guest, pcpus):
        """Every thread Nova places besides vCPUs really runs on pcpus."""
        threads = [t for t in guest['threads']
                   if t['kind'] not in UNPLACED_KINDS]
        self.assertIn('emulator', {t['kind'] for t in threads})
        for thread in threads:
            self.assertEqual(sorted(pcpus), thread['cpus'],
                             'thread %s (%s) of %s' % (
                                 thread['tid'], thread['name'],
                                 guest['name']))

    @staticmethod
    def parse_cpus(spec):
        return cpuset.parse_cpu_spec(spec, key='cpu set')
