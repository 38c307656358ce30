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

"""Servers on real compute hosts: placement, libvirt and /proc agree."""

from tempest.lib import decorators

from nova_emulator_threads_tempest_plugin.tests import base

CONF = base.CONF


class IsolateTest(base.EmulatorThreadsTest):

    @decorators.idempotent_id('9b2f4c6e-1d3a-4e5b-8c7d-2a4e6f8b0c11')
    def test_isolate_server(self):
        flavor = self.pinned_flavor(base.ISOLATE)
        server = self.boot(flavor)
        # The scheduler claimed the emulator pCPU with the vCPUs.
        allocated = self.allocated(server['id'])
        self.assertEqual(flavor['vcpus'] + 1, allocated.get('PCPU'))
        self.assertNotIn('VCPU', allocated)

        host = self.compute_host(server)
        tune = host.domain(server['id']).live.cputune
        vcpu_pcpus = set()
        # A loop, not cases: every vCPU of this one guest.
        for vcpu in range(flavor['vcpus']):
            self.assertEqual(1, len(tune.vcpupins[vcpu]), tune.vcpupins)
            vcpu_pcpus |= tune.vcpupins[vcpu]
        # One pCPU of its own, which no vCPU of the guest runs on.
        self.assertIsNotNone(tune.emulatorpin)
        self.assertEqual(1, len(tune.emulatorpin), tune.emulatorpin)
        self.assertTrue(tune.emulatorpin.isdisjoint(vcpu_pcpus),
                        'emulatorpin %s shares a vCPU pCPU %s' % (
                            sorted(tune.emulatorpin), sorted(vcpu_pcpus)))
        guest = self.audited_guest(host, server)
        self.assert_threads_on(guest, tune.emulatorpin)


class ShareTest(base.EmulatorThreadsTest):

    needs_share_host = True

    @decorators.idempotent_id('4e6a8c0b-2d4f-4a6c-9e1b-3c5e7a9b1d12')
    def test_share_server(self):
        flavor = self.pinned_flavor(base.SHARE)
        server = self.boot(flavor, host=CONF.emulator_threads.share_host)
        self.assertEqual(CONF.emulator_threads.share_host,
                         server['OS-EXT-SRV-ATTR:host'])
        # share costs no pCPU of its own.
        allocated = self.allocated(server['id'])
        self.assertEqual(flavor['vcpus'], allocated.get('PCPU'))

        host = self.compute_host(server)
        shared = CONF.emulator_threads.share_host_cpu_shared_set
        if not shared:
            raise self.skipException(
                'host-side checks skipped: [emulator_threads] '
                'share_host_cpu_shared_set is not set')
        tune = host.domain(server['id']).live.cputune
        self.assertEqual(self.parse_cpus(shared), tune.emulatorpin)
        guest = self.audited_guest(host, server, cpu_shared_set=shared)
        self.assert_threads_on(guest, tune.emulatorpin)


class FillTest(base.EmulatorThreadsTest):

    @decorators.idempotent_id('6c8e0a2d-3f5b-4c7e-8a1d-4e6a8c0e2f13')
    def test_fill_delete_refill(self):
        flavor = self.pinned_flavor(base.ISOLATE)
        need = flavor['vcpus'] + 1
        room = self.room_or_skip(flavor)
        if room + 1 > CONF.emulator_threads.fill_limit:
            raise self.skipException(
                'filling the cloud takes %d servers, more than '
                '[emulator_threads] fill_limit = %d' % (
                    room + 1, CONF.emulator_threads.fill_limit))
        servers = [self.boot(flavor) for _ in range(room)]

        # The one that no longer fits: ERROR, with a fault its user can
        # read, and nothing claimed.
        self.boot_refused(flavor)

        self.delete_and_wait(servers[0]['id'])
        server = self.boot(flavor)
        self.assertEqual(need, self.allocated(server['id']).get('PCPU'))


class DeleteTest(base.EmulatorThreadsTest):

    @decorators.idempotent_id('8a0c2e4f-5b7d-4e9a-8c3f-5a7c9e1b3d14')
    def test_delete_everything(self):
        servers = [self.boot(self.pinned_flavor(base.ISOLATE))]
        if CONF.emulator_threads.share_host:
            servers.append(self.boot(self.pinned_flavor(base.SHARE),
                                     host=CONF.emulator_threads.share_host))
        hosts = {}
        # A loop, not cases: every server of this one test.
        for server in servers:
            name = server['OS-EXT-SRV-ATTR:host']
            host = self.host_client(name)
            if host is not None:
                hosts[name] = host
                self.assertIn(server['OS-EXT-SRV-ATTR:instance_name'],
                              host.domain_names())
        for server in servers:
            self.delete_and_wait(server['id'])
        self.assertEqual({}, {name: used for name, used in
                              self.usages().items() if used})
        if not hosts:
            raise self.skipException(
                'host-side checks skipped: [emulator_threads] libvirt_uris '
                'has no libvirt URI for the servers\' hosts')
        for name, host in sorted(hosts.items()):
            self.assertEqual([], host.domain_names(), name)


class SharedPoolTest(base.EmulatorThreadsTest):
    """The share host's shared pool is counted: full means NoValidHost.

    With ``[emulator_threads] shared_pool_vcpus`` set in the cloud, every
    share server claims that many VCPU of its host's shared pool (the
    host's VCPU inventory, which floating servers use too). The test
    fills the pool with floating servers, sees the next share server
    refused with a fault its user can read while the host still has a
    free pCPU, deletes one floating server and boots the share server.
    """

    needs_share_host = True

    @decorators.idempotent_id('2f4a6c8e-0b1d-4f3a-9c5e-7a9b1c3d5e15')
    def test_full_pool_no_valid_host_then_refill(self):
        host = CONF.emulator_threads.share_host
        share = self.pinned_flavor(base.SHARE)
        provider = self.provider(host)

        # What a share server claims from the pool, as the cloud is set.
        probe = self.boot(share, host=host)
        claim = self.allocated(probe['id']).get('VCPU', 0)
        self.delete_and_wait(probe['id'])
        if not claim:
            raise self.skipException(
                'share servers claim no VCPU: [emulator_threads] '
                'shared_pool_vcpus is 0 in this cloud')
        if self.free(provider, 'PCPU') < share['vcpus']:
            raise self.skipException('%s has no free pCPU for a share '
                                     'server' % host)

        # Fill the pool with floating servers until a share server's claim
        # no longer fits (each floating vCPU takes one VCPU).
        floating = self.create_flavor(ram=128, vcpus=1, disk=1)
        fillers = max(0, self.free(provider, 'VCPU') - claim + 1)
        if fillers > CONF.emulator_threads.fill_limit:
            raise self.skipException(
                'filling the shared pool takes %d servers, more than '
                '[emulator_threads] fill_limit = %d' % (
                    fillers, CONF.emulator_threads.fill_limit))
        servers = [self.boot(floating, host=host) for _ in range(fillers)]
        self.assertLess(self.free(provider, 'VCPU'), claim)
        self.assertGreaterEqual(self.free(provider, 'PCPU'), share['vcpus'])

        # The pCPU is free, the pool is not: refused, readably, nothing
        # claimed.
        self.boot_refused(share)

        # A delete gives the room back.
        if servers:
            self.delete_and_wait(servers[0]['id'])
        server = self.boot(share)
        self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
        allocated = self.allocated(server['id'])
        self.assertEqual((share['vcpus'], claim),
                         (allocated.get('PCPU'), allocated.get('VCPU')))
