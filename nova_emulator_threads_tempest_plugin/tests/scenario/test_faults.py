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

"""Services that die or restart under servers: nothing is lost.

Each test injects a fault through ``[emulator_threads] fault_command``
(SIGKILL or a restart of a real nova-compute, libvirtd or RabbitMQ) and
then checks the cloud from its real state: every guest's pins as its
host's libvirtd reports them, placement's usages and allocations, Nova's
servers, and ``nova-emulator-threads audit`` on every host.
"""

import datetime
import shlex
import subprocess
import time

from tempest.lib import decorators

from nova_emulator_threads_tempest_plugin.tests import base

CONF = base.CONF

# Nova's behaviour, described as a bug report would.
INTERRUPTED_BUILD_HAS_NO_FAULT = (
    'nova-compute killed while instances build on it (or while it '
    'reschedules one): after its restart, init_host puts them from '
    'BUILDING into ERROR, ComputeManager._init_instance() for those it '
    'had claimed and _error_out_instances_whose_build_was_interrupted() '
    'for those with an allocation on it but no host yet, both through '
    '_set_instance_obj_error_state(), which records no instance fault. '
    'GET /servers/{id} then shows status ERROR with no "fault": the user '
    'cannot tell why. Each keeps its placement allocation (and a guest, '
    'if libvirt had started one) until it is deleted. Operator recovery: '
    'delete (or rebuild) the servers in ERROR; "nova-manage placement '
    'audit" then finds no orphaned allocation.')


class FaultTest(base.EmulatorThreadsTest):
    """Faults injected into the cloud, then every invariant checked."""

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.emulator_threads.fault_command:
            raise cls.skipException(
                '[emulator_threads] fault_command is not set: no way to '
                'kill or restart the cloud\'s services')
        if not CONF.emulator_threads.libvirt_uris:
            raise cls.skipException(
                '[emulator_threads] libvirt_uris is not set: the guests\' '
                'real pins cannot be read after a fault')

    def setUp(self):
        super().setUp()
        # Services this test killed and did not restart yet.
        self.down = []

    # -- faults ---------------------------------------------------------

    def fault(self, action, service):
        """``fault_command ACTION SERVICE``; fail with its output."""
        argv = shlex.split(CONF.emulator_threads.fault_command) + [
            action, service]
        # The command comes from tempest's configuration, not from input.
        done = subprocess.run(argv, capture_output=True,  # noqa: S603
                              text=True, check=False)
        self.assertEqual(0, done.returncode, '%s exited %d:\n%s%s' % (
            ' '.join(argv), done.returncode, done.stdout, done.stderr))
        if action == 'kill':
            self.down.append(service)
            # Before the servers' deletions (cleanups run last first):
            # they need the service back.
            self.addCleanup(self.restart_if_down, service)
        elif service in self.down:
            self.down.remove(service)

    def restart_if_down(self, service):
        """Bring back a service this test killed, whatever happened."""
        if service in self.down:
            self.fault('restart', service)

    # -- servers --------------------------------------------------------

    def all_servers(self):
        return self.admin_servers_client.list_servers(
            detail=True, all_tenants=True)['servers']

    def settled(self, server_ids):
        """Wait until no server is building; the servers as admin sees
        them.
        """
        shown = {}

        def done():
            shown.update({i: self.show(i) for i in server_ids})
            return all(s['status'] != 'BUILD' for s in shown.values())

        self.wait_until('servers %s to finish building' % server_ids, done)
        return [shown[i] for i in server_ids]

    # -- the invariants, from real state --------------------------------

    def hosts(self):
        return {name: self.host_client(name)
                for name in CONF.emulator_threads.libvirt_uris}

    @staticmethod
    def shared_set(host):
        if host == CONF.emulator_threads.share_host and (
                CONF.emulator_threads.share_host_cpu_shared_set):
            return base.EmulatorThreadsTest.parse_cpus(
                CONF.emulator_threads.share_host_cpu_shared_set)
        return frozenset()

    def pins(self):
        """Host -> guest name -> (vCPU pins, emulator pins), from each
        host's libvirtd.
        """
        return {name: {dom.name: (dict(dom.vcpu_pins), dom.emulator_pins)
                       for dom in host.domains()}
                for name, host in self.hosts().items()}

    def assert_no_pcpu_in_two_guests(self):
        """On each host, a pCPU a guest's vCPUs or isolated emulator
        threads are pinned to belongs to that guest alone (the shared
        set is for everyone's emulator threads).
        """
        for host, guests in self.pins().items():
            owners = {}
            for guest, (vcpu_pins, emulator_pins) in guests.items():
                own = set().union(*vcpu_pins.values()) | (
                    emulator_pins - self.shared_set(host))
                for pcpu in sorted(own):
                    self.assertNotIn(pcpu, owners, 'pCPU %d of %s is pinned '
                                     'by both %s and %s' % (
                                         pcpu, host, owners.get(pcpu),
                                         guest))
                    owners[pcpu] = guest

    def assert_audits_clean(self):
        for name, host in sorted(self.hosts().items()):
            shared = None
            if name == CONF.emulator_threads.share_host:
                shared = CONF.emulator_threads.share_host_cpu_shared_set
            status, report = host.audit(shared)
            self.assertEqual([], report['findings'], name)
            self.assertEqual(0, status, name)

    def assert_placement_is_the_servers_claims(self):
        """Every provider's usage is exactly the sum of the allocations
        of the servers Nova has: nothing leaked, nothing lost.
        """
        claims = {}
        for server in self.all_servers():
            for provider, allocation in self.placement_client.list_allocations(
                    server['id'])['allocations'].items():
                used = claims.setdefault(provider, {})
                for resource, amount in allocation['resources'].items():
                    used[resource] = used.get(resource, 0) + amount
        usages = {}
        for provider in self.providers():
            used = {resource: amount for resource, amount in
                    self.providers_client.list_resource_provider_usages(
                        provider['uuid'])['usages'].items() if amount}
            if used:
                usages[provider['uuid']] = used
        self.assertEqual(claims, usages)

    def assert_guests_are_nova_servers(self, statuses=('ACTIVE',)):
        """Each host runs exactly the guests of Nova's servers on it in
        these statuses.
        """
        servers = self.all_servers()
        for host, guests in self.pins().items():
            expected = sorted(
                s['OS-EXT-SRV-ATTR:instance_name'] for s in servers
                if s['OS-EXT-SRV-ATTR:host'] == host
                and s['status'] in statuses)
            self.assertEqual(expected, sorted(guests), host)

    def assert_consistent(self):
        self.assert_no_pcpu_in_two_guests()
        self.assert_audits_clean()
        self.assert_placement_is_the_servers_claims()
        self.assert_guests_are_nova_servers()


class ComputeKilledMidBootTest(FaultTest):

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.emulator_threads.nova_manage_command:
            raise cls.skipException(
                '[emulator_threads] nova_manage_command is not set: the '
                'operator\'s placement audit cannot run')

    def placement_audit(self):
        """``nova-manage placement audit --verbose``: its exit status
        (0: no orphaned allocation, 3: some found) and output.
        """
        argv = shlex.split(CONF.emulator_threads.nova_manage_command) + [
            'placement', 'audit', '--verbose']
        # The command comes from tempest's configuration, not from input.
        done = subprocess.run(argv, capture_output=True,  # noqa: S603
                              text=True, check=False)
        return done.returncode, done.stdout + done.stderr

    def wait_for_a_build_on_a_host(self, server_ids):
        """Wait until a compute host has claimed a server of the burst
        and builds it.

        :returns: (the host, that server's id, the ids of every server
            still building then), or (None, None, ()) when every boot
            finished first
        """
        deadline = time.monotonic() + CONF.compute.build_timeout
        while time.monotonic() < deadline:
            shown = [self.show(i) for i in server_ids]
            building = [s['id'] for s in shown if s['status'] == 'BUILD']
            for server in shown:
                if server['status'] == 'BUILD' and server[
                        'OS-EXT-SRV-ATTR:host']:
                    return (server['OS-EXT-SRV-ATTR:host'], server['id'],
                            building)
            if not building:
                return None, None, ()
            time.sleep(0.2)
        self.fail('no server of %s was claimed by a compute host within '
                  '%d s' % (server_ids, CONF.compute.build_timeout))

    @decorators.idempotent_id('1f3a5c7e-9b2d-4f6a-8c1e-3b5d7f9a2c41')
    def test_compute_killed_during_a_burst_of_isolate_boots(self):
        flavor = self.pinned_flavor(base.ISOLATE)
        need = flavor['vcpus'] + 1
        room = self.room_or_skip(flavor)
        burst = min(room + 2, CONF.emulator_threads.fill_limit + 2)
        server_ids = [self.create(flavor) for _ in range(burst)]

        host, claimed, in_flight = self.wait_for_a_build_on_a_host(
            server_ids)
        if host is None:
            raise self.skipException(
                'every boot of the burst finished before a compute host '
                'was seen building one: nothing to interrupt')
        self.fault('kill', 'nova-compute-%s' % host)
        self.fault('restart', 'nova-compute-%s' % host)

        servers = self.settled(server_ids)
        # A loop, not cases: every server of the one burst.
        for server in servers:
            self.assertIn(server['status'], ('ACTIVE', 'ERROR'),
                          server['id'])
        active = [s for s in servers if s['status'] == 'ACTIVE']
        errors = [s for s in servers if s['status'] == 'ERROR']
        self.assertLessEqual(len(active), room)
        # The boots refused before the fault say why to their users.
        # Those the kill caught in flight are Nova's case, checked last.
        for server in errors:
            if server['id'] not in in_flight:
                self.assertIn('No valid host was found',
                              server.get('fault', {}).get('message', ''),
                              server['id'])
        for server in active:
            self.assertEqual(need, self.allocated(server['id']).get('PCPU'))
        self.assert_no_pcpu_in_two_guests()
        self.assert_audits_clean()
        self.assert_placement_is_the_servers_claims()

        # An operator deletes the servers in ERROR, then asks Nova for
        # allocations no server owns.
        for server in errors:
            self.delete_and_wait(server['id'])
        status, output = self.placement_audit()
        self.assertEqual(0, status, output)
        self.assert_consistent()
        claimed_pcpus = sum(self.allocated(s['id']).get('PCPU', 0)
                            for s in active)
        used = sum(u.get('PCPU', 0) for u in self.usages().values())
        self.assertEqual(claimed_pcpus, used)
        for provider in self.providers():
            self.assertGreaterEqual(self.free(provider), 0,
                                    provider['name'])

        # The build the kill interrupted is in ERROR: Nova says nothing of
        # why to its user.
        if any(s['id'] == claimed for s in errors):
            self.expectFailure(
                INTERRUPTED_BUILD_HAS_NO_FAULT, self.assertEqual, [],
                [s['id'] for s in errors if 'fault' not in s])


class ComputeRestartTest(FaultTest):

    @decorators.idempotent_id('2a4c6e8f-0b3d-4a5c-9d2f-4c6e8a0b3d52')
    def test_reserved_pcpus_still_counted_after_compute_restart(self):
        flavor = self.pinned_flavor(base.ISOLATE)
        server = self.boot(flavor)
        host = server['OS-EXT-SRV-ATTR:host']
        before_pins = self.pins()
        before_usages = self.usages()

        self.fault('restart', 'nova-compute-%s' % host)

        self.assertEqual(before_pins, self.pins())
        self.assertEqual(before_usages, self.usages())
        self.assert_consistent()
        # A guest that would fit in the pCPU the isolate server reserves
        # for its emulator threads: the host has no room for it.
        dedicated = self.pinned_flavor({'hw:cpu_policy': 'dedicated'})
        self.assertLess(self.free(self.provider(host)), dedicated['vcpus'])
        self.boot_refused(dedicated, host=host)
        self.assert_consistent()


class LibvirtdRestartTest(FaultTest):

    needs_share_host = True

    @decorators.idempotent_id('3b5d7f9a-1c4e-4b6d-8e3a-5d7f9b1c4e63')
    def test_guests_keep_their_pins_when_libvirtd_restarts(self):
        isolate = self.pinned_flavor(base.ISOLATE)
        servers = [self.boot(isolate),
                   self.boot(self.pinned_flavor(base.SHARE),
                             host=CONF.emulator_threads.share_host)]
        before = self.pins()
        for host in sorted({s['OS-EXT-SRV-ATTR:host'] for s in servers}):
            self.fault('restart', 'libvirtd-%s' % host)

        # The same guests, running, with the same pins.
        self.assertEqual(before, self.pins())
        self.assert_consistent()
        # The isolate host's reserved pCPU is not for a new isolate guest:
        # placement still counts it, and the boot is refused.
        self.assertEqual(0, self.room(isolate))
        self.boot_refused(isolate)
        # Nova works with the restarted libvirtd: the isolate guest goes,
        # a new one takes its pCPUs and nothing else's. (nova-compute
        # disables its service when it finds its libvirt connection
        # closed, and enables it again once it has reconnected, which the
        # deletion makes it do.)
        self.delete_and_wait(servers[0]['id'])
        host = servers[0]['OS-EXT-SRV-ATTR:host']
        self.wait_until('nova-compute on %s to be enabled again' % host,
                        lambda: self.compute_enabled(host))
        self.boot(isolate)
        self.assert_consistent()

    def compute_enabled(self, host):
        return all(service['status'] == 'enabled' for service in
                   self.os_admin.services_client.list_services(
                       binary='nova-compute', host=host)['services'])


class RabbitMQRestartTest(FaultTest):

    @decorators.idempotent_id('4c6e8a0b-2d5f-4c7e-9f4b-6e8a0c2d5f74')
    def test_boot_after_rabbitmq_restart(self):
        flavor = self.pinned_flavor(base.ISOLATE)
        first = self.boot(flavor)
        self.delete_and_wait(first['id'])

        restarted = datetime.datetime.now(datetime.UTC).replace(
            tzinfo=None)
        self.fault('restart', 'rabbitmq')
        # As an operator would: the next boot once Nova's services are
        # back on the bus. A compute host's report reaches the database
        # through nova-conductor, so a report after the restart shows
        # that conductor consumes its queue again. (A boot sent before
        # that is lost: the queues are not durable, and a cast published
        # before its consumer has declared its queue again is dropped,
        # leaving the server in BUILD.)
        self.wait_until('every nova-compute to report after the RabbitMQ '
                        'restart', lambda: self.computes_reported(restarted))

        server = self.boot(flavor)
        self.assertEqual(flavor['vcpus'] + 1,
                         self.allocated(server['id']).get('PCPU'))
        self.assert_consistent()

    def computes_reported(self, since):
        services = self.os_admin.services_client.list_services(
            binary='nova-compute')['services']
        return bool(services) and all(
            service['state'] == 'up' and service['updated_at'] and
            datetime.datetime.fromisoformat(service['updated_at']).replace(
                tzinfo=None) > since for service in services)
