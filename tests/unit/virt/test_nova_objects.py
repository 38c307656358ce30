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

"""Nova's topology objects -> the engine's dataclasses."""

import warnings
from typing import Any

import ddt
import hypothesis
from hypothesis import strategies as st

from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import nova_objects
from nova_emulator_threads.virt import topology
from tests.unit import base

with warnings.catch_warnings():
    # Nova pulls in eventlet, which warns that it is deprecated; that is
    # not this project's business.
    warnings.simplefilter('ignore')
    from tests.unit import nova_fakes

NOVA = nova_fakes.nova_objects

HOST = topology.HostTopology(
    cells=(
        topology.HostCell(
            id=0, cpuset=frozenset({0, 1}),
            pcpuset=frozenset({2, 3, 4, 5, 6, 7}), memory=16384,
            # Not sorted, on purpose: Nova's packing walks this order.
            siblings=(frozenset({3, 7}), frozenset({2, 6}),
                      frozenset({0, 4}), frozenset({1, 5})),
            mempages=(topology.MemPages(size_kb=4, total=3145728),
                      topology.MemPages(size_kb=2048, total=1024, used=512,
                                        reserved=16)),
            pinned_cpus=frozenset({2, 6}), cpu_usage=2, memory_usage=4096,
            socket=0),
        topology.HostCell(
            id=1, cpuset=frozenset(), pcpuset=frozenset({8, 9, 10, 11}),
            memory=16384,
            siblings=(frozenset({10}), frozenset({8}), frozenset({11}),
                      frozenset({9})),
            mempages=(topology.MemPages(size_kb=4, total=4194304),)),
    ),
    cpu_shared_set=frozenset({0, 1}))

ISOLATE = topology.InstanceTopology(
    cells=(
        topology.InstanceCell(
            id=1, cpuset=frozenset(), pcpuset=frozenset({0, 1}),
            memory=1024, pagesize=2048, cpu_policy='dedicated',
            cpu_thread_policy='require', cpu_pinning={0: 8, 1: 10},
            cpuset_reserved=frozenset({11})),
        topology.InstanceCell(
            id=0, cpuset=frozenset(), pcpuset=frozenset({2, 3}),
            memory=1024, pagesize=2048, cpu_policy='dedicated',
            cpu_thread_policy='require', cpu_pinning={2: 3, 3: 7}),
    ),
    emulator_threads_policy='isolate',
    realtime_cpus=frozenset({1, 3}))

MIXED = topology.InstanceTopology(
    cells=(topology.InstanceCell(
        id=0, cpuset=frozenset({0}), pcpuset=frozenset({1, 2, 3}),
        memory=2048, cpu_policy='mixed', cpu_pinning={1: 4, 2: 5, 3: 9},
        cpuset_reserved=frozenset()),),
    emulator_threads_policy='share')

SHARED = topology.InstanceTopology(cells=(topology.InstanceCell(
    id=0, cpuset=frozenset({0, 1}), pcpuset=frozenset(), memory=512,
    pagesize=-1),))

REQUEST = topology.InstanceTopology(cells=(topology.InstanceCell(
    id=0, cpuset=frozenset(), pcpuset=frozenset({0, 1}), memory=512,
    pagesize=-3, cpu_policy='dedicated', cpu_thread_policy='isolate'),),
    emulator_threads_policy='isolate')

INSTANCES = {'isolate': ISOLATE, 'mixed': MIXED, 'shared': SHARED,
             'request': REQUEST}


def _through_nova_host(host: topology.HostTopology) -> topology.HostTopology:
    """engine -> Nova's object -> its primitive (RPC) -> Nova's -> engine."""
    nova = NOVA.NUMATopology.obj_from_primitive(
        nova_fakes.nova_host(host).obj_to_primitive())
    return nova_objects.host_from_object(nova, host.cpu_shared_set)


def _through_nova_instance(
    instance: topology.InstanceTopology,
) -> topology.InstanceTopology:
    nova = NOVA.InstanceNUMATopology.obj_from_primitive(
        nova_fakes.nova_instance(instance).obj_to_primitive())
    return nova_objects.instance_from_object(nova, instance.realtime_cpus)


class TestHost(base.TestCase):

    def test_round_trip(self) -> None:
        obj = nova_fakes.nova_host(HOST)
        self.assertEqual(
            HOST, nova_objects.host_from_object(obj, HOST.cpu_shared_set))

    def test_order_of_siblings_and_pages_is_kept(self) -> None:
        # Nova's packing walks the sibling sets in the object's order.
        host = nova_objects.host_from_object(nova_fakes.nova_host(HOST))
        self.assertEqual(HOST.cells[0].siblings, host.cells[0].siblings)
        self.assertEqual([4, 2048],
                         [p.size_kb for p in host.cells[0].mempages])

    def test_cpu_shared_set_is_an_argument(self) -> None:
        obj = nova_fakes.nova_host(HOST)
        self.assertEqual(frozenset(),
                         nova_objects.host_from_object(obj).cpu_shared_set)

    def test_round_trip_through_nova(self) -> None:
        self.assertEqual(HOST, _through_nova_host(HOST))

    def test_from_an_old_object(self) -> None:
        # A NUMACell 1.0 from an old peer: no pcpuset, pins, siblings,
        # pages nor socket.
        obj = NOVA.NUMATopology(cells=[
            NOVA.NUMACell(id=0, cpuset={0, 1, 2, 3}, memory=2048,
                          cpu_usage=0, memory_usage=0)])
        old = NOVA.NUMATopology.obj_from_primitive(
            obj.obj_to_primitive('1.2', {'NUMACell': '1.0'}))
        self.assertNotIn('pcpuset', old.cells[0])
        cell = nova_objects.host_from_object(old).cells[0]
        self.assertEqual(topology.HostCell(
            id=0, cpuset=frozenset({0, 1, 2, 3}), pcpuset=frozenset(),
            memory=2048), cell)

    def test_from_novas_host(self) -> None:
        # As Nova's libvirt driver builds it, network_metadata included.
        nova = NOVA.NUMATopology(cells=[NOVA.NUMACell(
            id=0, socket=0, cpuset=set(), pcpuset={0, 1, 2, 3},
            memory=4096, cpu_usage=0, memory_usage=0, pinned_cpus=set(),
            siblings=[{0, 2}, {1, 3}],
            mempages=[NOVA.NUMAPagesTopology(
                size_kb=4, total=1048576, used=0, reserved=0)],
            network_metadata=NOVA.NetworkMetadata(
                physnets={'physnet0'}, tunneled=False))])
        host = nova_objects.host_from_object(nova, frozenset({4}))
        self.assertEqual((frozenset({0, 2}), frozenset({1, 3})),
                         host.cells[0].siblings)
        self.assertEqual(frozenset({4}), host.cpu_shared_set)

    def test_missing_required_field(self) -> None:
        obj = NOVA.NUMATopology(cells=[NOVA.NUMACell(id=3, cpuset=set())])
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  nova_objects.host_from_object, obj)
        self.assertEqual("Cannot convert NUMACell %s: its required field "
                         "'memory' is not set." % NOVA.NUMACell.VERSION,
                         str(error))


@ddt.ddt
class TestInstance(base.TestCase):

    def test_isolate(self) -> None:
        obj = nova_fakes.nova_instance(ISOLATE)
        self.assertTrue(obj.emulator_threads_isolated)
        instance = nova_objects.instance_from_object(obj)
        self.assertTrue(instance.emulator_threads_isolated)
        self.assertEqual({0: 8, 1: 10}, instance.cells[0].cpu_pinning)
        self.assertEqual(frozenset({11}), instance.cells[0].cpuset_reserved)
        self.assertIsNone(instance.cells[1].cpuset_reserved)
        self.assertEqual(fields.CPUAllocationPolicy.DEDICATED,
                         instance.cells[0].cpu_policy)

    def test_no_policy_is_none(self) -> None:
        # As Nova's numa_get_constraints: set, to None.
        obj = nova_fakes.nova_instance(SHARED)
        self.assertIn('emulator_threads_policy', obj)
        self.assertIsNone(
            nova_objects.instance_from_object(obj).emulator_threads_policy)

    @ddt.named_data(*INSTANCES.items())
    def test_round_trips(self, instance: topology.InstanceTopology) -> None:
        obj = nova_fakes.nova_instance(instance)
        self.assertEqual(instance, nova_objects.instance_from_object(
            obj, instance.realtime_cpus))
        self.assertEqual(instance, _through_nova_instance(instance))

    def test_realtime_cpus_is_an_argument(self) -> None:
        obj = nova_fakes.nova_instance(ISOLATE)
        self.assertEqual(
            frozenset(),
            nova_objects.instance_from_object(obj).realtime_cpus)

    def test_from_novas_fitted_topology(self) -> None:
        # Nova's own fitter output, read by ours.
        fitted = nova_fakes.nova_hardware.numa_fit_instance_to_host(
            nova_fakes.nova_host(HOST), nova_fakes.nova_instance(REQUEST),
            provider_mapping=None)
        self.assertIsNotNone(fitted)
        instance = nova_objects.instance_from_object(fitted)
        cell = instance.cells[0]
        self.assertEqual(fitted.cells[0].id, cell.id)
        self.assertEqual(fitted.cells[0].cpu_pinning, cell.cpu_pinning)
        self.assertEqual(fitted.cells[0].cpuset_reserved,
                         cell.cpuset_reserved)
        self.assertEqual(1, len(cell.cpuset_reserved or ()))
        self.assertTrue(instance.emulator_threads_isolated)

    def test_from_an_old_object(self) -> None:
        # An InstanceNUMACell 1.4 from an old peer: no pcpuset; 'dedicated'
        # vCPUs were in cpuset then.
        obj = NOVA.InstanceNUMATopology(cells=[NOVA.InstanceNUMACell(
            id=0, cpuset=set(), pcpuset={0, 1}, memory=512,
            cpu_policy='dedicated')])
        old = NOVA.InstanceNUMATopology.obj_from_primitive(
            obj.obj_to_primitive('1.3', {'InstanceNUMACell': '1.4'}))
        self.assertNotIn('pcpuset', old.cells[0])
        instance = nova_objects.instance_from_object(old)
        self.assertEqual(frozenset({0, 1}), instance.cells[0].cpuset)
        self.assertEqual(frozenset(), instance.cells[0].pcpuset)

    def test_missing_required_field(self) -> None:
        obj = NOVA.InstanceNUMATopology(cells=[NOVA.InstanceNUMACell(
            id=0, memory=512)])
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  nova_objects.instance_from_object, obj)
        self.assertEqual("Cannot convert InstanceNUMACell %s: its required "
                         "field 'cpuset' is not set."
                         % NOVA.InstanceNUMACell.VERSION, str(error))


# Generated topologies: any values of the right types, whether or not a
# host would report them, since conversion must not care.

_cpus = st.frozensets(st.integers(0, 127), max_size=10)


@st.composite
def _hosts(draw: Any) -> topology.HostTopology:
    ids = draw(st.lists(st.integers(0, 7), min_size=1, max_size=4,
                        unique=True))
    cells = tuple(
        topology.HostCell(
            id=cell_id, cpuset=draw(_cpus), pcpuset=draw(_cpus),
            memory=draw(st.integers(0, 2 ** 20)),
            siblings=tuple(draw(st.lists(
                st.frozensets(st.integers(0, 127), min_size=1, max_size=4),
                max_size=8))),
            mempages=tuple(draw(st.lists(st.builds(
                topology.MemPages,
                size_kb=st.sampled_from([4, 2048, 1048576]),
                total=st.integers(0, 2 ** 22), used=st.integers(0, 4096),
                reserved=st.integers(0, 4096)), max_size=3))),
            pinned_cpus=draw(_cpus),
            cpu_usage=draw(st.integers(0, 128)),
            memory_usage=draw(st.integers(0, 2 ** 20)),
            socket=draw(st.none() | st.integers(0, 3)))
        for cell_id in ids)
    return topology.HostTopology(cells=cells, cpu_shared_set=draw(_cpus))


_instance_cells = st.builds(
    topology.InstanceCell,
    id=st.integers(-1, 7), cpuset=_cpus, pcpuset=_cpus,
    memory=st.integers(0, 2 ** 20),
    pagesize=st.none() | st.sampled_from([-3, -2, -1, 4, 2048, 1048576]),
    cpu_policy=st.none() | st.sampled_from(
        fields.CPUAllocationPolicy.ALL),
    cpu_thread_policy=st.none() | st.sampled_from(
        fields.CPUThreadAllocationPolicy.ALL),
    cpu_pinning=st.none() | st.dictionaries(
        st.integers(0, 127), st.integers(0, 127), max_size=8),
    cpuset_reserved=st.none() | _cpus)

_instances = st.builds(
    topology.InstanceTopology,
    cells=st.lists(_instance_cells, min_size=1, max_size=4).map(tuple),
    emulator_threads_policy=st.none() | st.sampled_from(
        fields.CPUEmulatorThreadsPolicy.ALL),
    realtime_cpus=_cpus)

_settings = hypothesis.settings(
    max_examples=60, derandomize=True, database=None, deadline=None)


class TestGeneratedRoundTrips(base.TestCase):
    """dataclass -> Nova's object -> primitive -> Nova's -> dataclass."""

    @_settings
    @hypothesis.given(_hosts())
    def test_host(self, host: topology.HostTopology) -> None:
        self.assertEqual(host, _through_nova_host(host))

    @_settings
    @hypothesis.given(_instances)
    def test_instance(self, instance: topology.InstanceTopology) -> None:
        self.assertEqual(instance, _through_nova_instance(instance))
