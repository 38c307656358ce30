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

"""Booting servers with an emulator threads policy, through the API.

Every test asserts on what a user or an operator sees: server status and
fault, placement allocations and usages, the host's NUMA pinning, and the
guest's ``<cputune>``.
"""

import ddt

from nova_emulator_threads.virt.libvirt import driver
from tests.functional import base


class IsolateTest(base.EmulatorThreadsTestBase):
    """``isolate``: one more dedicated pCPU, claimed and pinned."""

    def setUp(self) -> None:
        super().setUp()
        # Two host cells, CPUs 0-3 and 4-7; 0 and 4 are shared.
        self.host = self.start_host('host1', dedicated='1-3,5-7',
                                    shared='0,4')

    def test_driver_is_ours(self) -> None:
        self.assertIsInstance(self.computes[self.host].driver,
                              driver.LibvirtDriver)

    def test_isolate(self) -> None:
        server = self.boot(self.flavor(vcpus=2, **base.ISOLATE))
        self.assert_isolated(server, self.host, vcpus=2)
        self.assertEqual(
            {'DISK_GB': 1, 'MEMORY_MB': 1024, 'PCPU': 3, 'VCPU': 0},
            self.usages(self.host))

    def test_isolate_two_guest_nodes(self) -> None:
        # Guest node 0 and 1 land on different host cells; the reserved
        # pCPU is on the one of guest node 0 whichever that is.
        server = self.boot(self.flavor(vcpus=4, hw__numa_nodes='2',
                                       **base.ISOLATE))
        self.assert_isolated(server, self.host, vcpus=4)
        numa = self.instance_numa(server)
        self.assertEqual(2, len({cell.id for cell in numa.cells}))

    def test_alias_alone(self) -> None:
        server = self.boot(self.flavor(
            vcpus=2, hw__cpu_policy='dedicated',
            hw__emulator_threads_policy='isolate'))
        self.assert_isolated(server, self.host, vcpus=2)

    def test_alias_with_the_same_value(self) -> None:
        server = self.boot(self.flavor(
            vcpus=2, hw__emulator_threads_policy='isolate', **base.ISOLATE))
        self.assert_isolated(server, self.host, vcpus=2)


class ShareTest(base.EmulatorThreadsTestBase):
    """``share``: on ``cpu_shared_set``, else over the guest's pCPUs."""

    def test_share_with_cpu_shared_set(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        server = self.boot(self.flavor(vcpus=2, **base.SHARE))
        # The whole shared set, not only the guest's cell (as Nova).
        self.assert_shared(server, host, vcpus=2, emulatorpin={0, 4})

    def test_share_without_cpu_shared_set(self) -> None:
        host = self.start_host('host1', dedicated='0-7')
        server = self.boot(self.flavor(vcpus=2, **base.SHARE))
        self.assert_shared(server, host, vcpus=2, emulatorpin=None)

    def test_alias_alone(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        server = self.boot(self.flavor(
            vcpus=2, hw__cpu_policy='dedicated',
            hw__emulator_threads_policy='share'))
        self.assert_shared(server, host, vcpus=2, emulatorpin={0, 4})


@ddt.ddt
class RefusedRequestTest(base.EmulatorThreadsTestBase):
    """Bad requests are refused by the API with one clear sentence."""

    def setUp(self) -> None:
        super().setUp()
        self.host = self.start_host('host1', dedicated='1-3,5-7',
                                    shared='0,4')

    def assert_nothing_booted(self) -> None:
        self.assertEqual([], self.api.get_servers())
        self.assertEqual({}, {rc: n for rc, n in
                              self.usages(self.host).items() if n})

    def test_bad_value_in_flavor_extra_specs(self) -> None:
        flavor = self.flavor(vcpus=2)
        status, message = self.api_error(
            self.set_extra_specs, flavor, **{
                'hw:cpu_policy': 'dedicated',
                'hw:cpu_emulator_threads': 'isolated'})
        self.assertEqual(400, status)
        self.assertEqual(
            "Invalid hw:cpu_emulator_threads='isolated': allowed values "
            "are 'share', 'isolate'.", message)
        # Nothing of the request was stored.
        self.assertEqual({}, self.admin_api.api_get(
            '/flavors/%s/os-extra_specs' % flavor).body['extra_specs'])

    @ddt.data(('hw:emulator_threads_policy', 'isolated'),
              ('hw:cpu_policy', 'pinned'),
              ('hw:no_such_key', 'yes'))
    @ddt.unpack
    def test_nova_hw_validators_still_work(self, key: str,
                                           value: str) -> None:
        flavor = self.flavor(vcpus=2)
        status, message = self.api_error(
            self.set_extra_specs, flavor, **{key: value})
        self.assertEqual(400, status, key)

    def test_ours_is_a_known_hw_key(self) -> None:
        # Nova's validators refuse an unknown hw: key (above): ours passes.
        self.set_extra_specs(self.flavor(vcpus=2),
                             **{'hw:cpu_emulator_threads': 'share'})

    def test_both_keys_with_different_values(self) -> None:
        flavor = self.flavor(vcpus=2, hw__emulator_threads_policy='share',
                             **base.ISOLATE)
        status, message = self.create_server_error(flavor)
        self.assertEqual(400, status)
        self.assertIn("hw:cpu_emulator_threads='isolate'", message)
        self.assertIn("hw:emulator_threads_policy='share'", message)
        self.assert_nothing_booted()

    def test_isolate_without_dedicated_cpu_policy(self) -> None:
        flavor = self.flavor(vcpus=2, hw__cpu_emulator_threads='isolate')
        status, message = self.create_server_error(flavor)
        self.assertEqual(400, status)
        # Nova's own check and sentence (numa_get_constraints): the CPU
        # policy may also come from the image, so only it can decide.
        self.assertEqual('An isolated CPU emulator threads option requires '
                         'a dedicated CPU policy option.', message)
        self.assert_nothing_booted()


class CapacityTest(base.EmulatorThreadsTestBase):
    """The reserved pCPU counts when deciding whether a host has room."""

    def test_exactly_vcpus_free_is_not_enough(self) -> None:
        # Two dedicated pCPUs: room for the vCPUs, none for the emulator.
        host = self.start_host('host1', dedicated='1-2', shared='0,3',
                               cells=1)
        server = self.boot(self.flavor(vcpus=2, **base.ISOLATE),
                           expected_state='ERROR')
        self.assertIn('No valid host was found', server['fault']['message'])
        self.assertEqual(set(), self.pinned(host))
        self.assertEqual({}, self._get_allocations_by_server_uuid(
            server['id']))

    def test_exactly_vcpus_free_after_other_guests(self) -> None:
        # Five dedicated pCPUs in one cell; a first guest takes three.
        host = self.start_host('host1', dedicated='1-5', shared='0,6-7',
                               cells=1, cores=8)
        first = self.boot(self.flavor(vcpus=2, **base.ISOLATE))
        self.assertEqual(3, len(self.pinned(host)))
        # Two free pCPUs: room for two vCPUs, none for their emulator.
        second = self.boot(self.flavor(vcpus=2, **base.ISOLATE),
                           expected_state='ERROR')
        self.assertIn('No valid host was found', second['fault']['message'])
        self.assertEqual(3, len(self.pinned(host)))
        self.assertEqual(3, self.usages(host)['PCPU'])
        # One vCPU and its emulator pCPU fit in the same two.
        third = self.boot(self.flavor(vcpus=1, **base.ISOLATE))
        self.assertEqual(5, len(self.pinned(host)))
        self.assertEqual(5, self.usages(host)['PCPU'])
        tune = self.cputune(third, host)
        self.assertTrue(tune['emulatorpin'].isdisjoint(
            self.vcpu_pcpus(tune) | self.vcpu_pcpus(
                self.cputune(first, host))))

    def test_vcpus_plus_one_free_is_enough(self) -> None:
        host = self.start_host('host1', dedicated='1-3', shared='0',
                               cells=1)
        server = self.boot(self.flavor(vcpus=2, **base.ISOLATE))
        self.assert_isolated(server, host, vcpus=2)

    def test_fill_delete_refill(self) -> None:
        # Two cells of three dedicated pCPUs: one 2-vCPU isolate guest per
        # cell, not a third.
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        flavor = self.flavor(vcpus=2, **base.ISOLATE)
        first = self.boot(flavor)
        second = self.boot(flavor)
        self.assertEqual(6, len(self.pinned(host)))
        self.assertEqual(6, self.usages(host)['PCPU'])
        third = self.boot(flavor, expected_state='ERROR')
        self.assertIn('No valid host was found', third['fault']['message'])

        # Deleting one gives its three pCPUs back, reserved one included.
        freed = (set(self.cputune(first, host)['emulatorpin']) |
                 self.vcpu_pcpus(self.cputune(first, host)))
        self._delete_server(first)
        self.assertEqual(3, len(self.pinned(host)))
        self.assertEqual(3, self.usages(host)['PCPU'])
        fourth = self.boot(flavor)
        numa = self.instance_numa(fourth)
        tune = self.cputune(fourth, host)
        self.assertEqual(freed, tune['emulatorpin'] | self.vcpu_pcpus(tune))
        self.assertEqual(numa.cells[0].cpuset_reserved, tune['emulatorpin'])
        self.assertEqual(6, len(self.pinned(host)))
        self.assertEqual(6, self.usages(host)['PCPU'])
        self.assertEqual('ACTIVE', self.api.get_server(second['id'])['status'])
