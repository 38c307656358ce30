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

"""Our objects against Nova's: same schema, lossless conversion both ways."""

import collections.abc
import typing
import warnings
from typing import Any

from oslotest import base as test_base

with warnings.catch_warnings():
    # oslo.versionedobjects pulls in eventlet, which warns that it is
    # deprecated; that is not this project's business.
    warnings.simplefilter('ignore')
    from oslo_versionedobjects import base as ovo_base
    from oslo_versionedobjects import exception as ovo_exception
    from oslo_versionedobjects import fields as ovo_fields
    from oslo_versionedobjects import fixture as ovo_fixture

from nova_emulator_threads import exception
from nova_emulator_threads import objects
from nova_emulator_threads.objects import base
from nova_emulator_threads.objects import network_metadata
from nova_emulator_threads.objects import numa
from nova_emulator_threads.objects import virt_cpu_topology
from tests.unit.objects import utils

nova_objects = utils.nova_objects

NAMES = ('InstanceNUMACell', 'InstanceNUMATopology', 'NUMACell',
         'NUMAPagesTopology', 'NUMATopology', 'NetworkMetadata',
         'VirtCPUTopology')

UUID = 'a0d3f5c6-0a4e-4b36-9f43-5b5f7a9d3e11'


def _ours(name: str) -> type[ovo_base.VersionedObject]:
    return base.EmulatorThreadsObjectRegistry.obj_classes()[name][0]


def _novas(name: str) -> type[ovo_base.VersionedObject]:
    cls: type[ovo_base.VersionedObject] = getattr(nova_objects, name)
    return cls


# Our objects, one per kind of topology the engine produces or reads.

def isolate_guest() -> numa.InstanceNUMATopology:
    """Two pinned cells, emulator threads isolated on host cell 1."""
    cell0 = numa.InstanceNUMACell(
        id=1, cpuset=set(), pcpuset={0, 1}, memory=1024, pagesize=2048,
        cpu_policy='dedicated', cpu_thread_policy='prefer',
        cpuset_reserved={11})
    cell0.cpu_pinning = {0: 8, 1: 10}
    cell1 = numa.InstanceNUMACell(
        id=0, cpuset=set(), pcpuset={2, 3}, memory=1024, pagesize=2048,
        cpu_policy='dedicated', cpu_thread_policy='prefer')
    cell1.cpu_pinning = {2: 3, 3: 5}
    return numa.InstanceNUMATopology(
        instance_uuid=UUID, cells=[cell0, cell1],
        emulator_threads_policy='isolate')


def mixed_guest() -> numa.InstanceNUMATopology:
    """A 'mixed' cell: floating cpuset and pinned pcpuset, share."""
    cell = numa.InstanceNUMACell(
        id=0, cpuset={0, 1}, pcpuset={2, 3}, memory=4096,
        cpu_policy='mixed', cpu_thread_policy='prefer',
        cpuset_reserved=set())
    cell.cpu_pinning = {2: 5, 3: 7}
    return numa.InstanceNUMATopology(
        cells=[cell], emulator_threads_policy='share')


def shared_guest() -> numa.InstanceNUMATopology:
    """Unpinned, small pages, no emulator-thread policy (as Nova's)."""
    return numa.InstanceNUMATopology(cells=[
        numa.InstanceNUMACell(id=0, cpuset={0, 1}, pcpuset=set(),
                              memory=512, pagesize=-1),
        numa.InstanceNUMACell(id=1, cpuset={2, 3}, pcpuset=set(),
                              memory=512, pagesize=-1)])


def legacy_guest() -> numa.InstanceNUMATopology:
    """An old cell that still carries cpu_topology."""
    return numa.InstanceNUMATopology(id=7, instance_uuid=UUID, cells=[
        numa.InstanceNUMACell(
            id=0, cpuset={0, 1}, pcpuset=set(), memory=2048,
            cpu_topology=virt_cpu_topology.VirtCPUTopology(
                sockets=1, cores=1, threads=2))])


def host() -> numa.NUMATopology:
    """Two SMT cells, siblings out of order, pages, pins, physnets."""
    return numa.NUMATopology(cells=[
        numa.NUMACell(
            id=0, socket=0, cpuset={0, 1}, pcpuset={2, 3, 4, 5, 6, 7},
            memory=16384, cpu_usage=2, memory_usage=4096,
            pinned_cpus={2, 4},
            siblings=[{3, 7}, {2, 6}, {0, 4}, {1, 5}],
            mempages=[
                numa.NUMAPagesTopology(size_kb=4, total=3145728, used=0,
                                       reserved=0),
                numa.NUMAPagesTopology(size_kb=2048, total=1024, used=512,
                                       reserved=16)],
            network_metadata=network_metadata.NetworkMetadata(
                physnets={'physnet0', 'physnet1'}, tunneled=False)),
        numa.NUMACell(
            id=1, socket=None, cpuset=set(), pcpuset={8, 9, 10, 11},
            memory=16384, cpu_usage=0, memory_usage=0, pinned_cpus=set(),
            siblings=[{10}, {8}, {11}, {9}],
            mempages=[
                numa.NUMAPagesTopology(size_kb=4, total=4194304),
                numa.NUMAPagesTopology(size_kb=2048, total=512, used=0,
                                       reserved=0)],
            network_metadata=network_metadata.NetworkMetadata(
                physnets=set(), tunneled=True)),
    ])


OUR_CASES = {
    'isolate_guest': isolate_guest,
    'mixed_guest': mixed_guest,
    'shared_guest': shared_guest,
    'legacy_guest': legacy_guest,
    'host': host,
}


class TestSchema(test_base.BaseTestCase):
    """Our objects have Nova 34's names, versions and fields."""

    def setUp(self) -> None:
        super().setUp()
        objects.register_all()

    def test_versions(self) -> None:
        for name in NAMES:
            self.assertEqual(_novas(name).VERSION, _ours(name).VERSION, name)

    def test_fields(self) -> None:
        for name in NAMES:
            ours, novas = _ours(name).fields, _novas(name).fields
            self.assertEqual(sorted(novas), sorted(ours), name)
            for field_name, nova_field in novas.items():
                where = f'{name}.{field_name}'
                field = ours[field_name]
                self.assertEqual(type(nova_field).__name__,
                                 type(field).__name__, where)
                self.assertEqual(nova_field.nullable, field.nullable, where)
                self.assertEqual(nova_field.default, field.default, where)
                self.assertEqual(nova_field.read_only, field.read_only,
                                 where)
                # The object a (list of) object field holds.
                self.assertEqual(getattr(nova_field, 'objname', None),
                                 getattr(field, 'objname', None), where)
                if isinstance(nova_field, ovo_fields.BaseEnumField):
                    # The same values, in an order of our own.
                    self.assertIsInstance(field, ovo_fields.BaseEnumField,
                                          where)
                    self.assertEqual(set(nova_field.valid_values),
                                     set(typing.cast(
                                         ovo_fields.BaseEnumField,
                                         field).valid_values),
                                     where)
                else:
                    self.assertEqual(repr(nova_field), repr(field), where)

    def test_hashes_equal_novas(self) -> None:
        # Where Nova's object has no remotable method and the field reprs
        # agree, oslo's fingerprint is the same as Nova's.
        ours = ovo_fixture.ObjectVersionChecker(
            base.EmulatorThreadsObjectRegistry.obj_classes())
        novas = ovo_fixture.ObjectVersionChecker(
            ovo_base.VersionedObjectRegistry.obj_classes())
        for name in ('NUMACell', 'NUMAPagesTopology', 'NUMATopology',
                     'NetworkMetadata', 'VirtCPUTopology'):
            self.assertEqual(novas._get_fingerprint(name),
                             ours._get_fingerprint(name), name)

    def test_novas_classes_are_untouched(self) -> None:
        for name in NAMES:
            for cls in ovo_base.VersionedObjectRegistry.obj_classes()[name]:
                self.assertTrue(cls.__module__.startswith('nova.objects.'),
                                cls)


class TestOursToNova(test_base.BaseTestCase):
    """ours -> Nova's -> ours."""

    def _round_trip(self, obj: base.EmulatorThreadsObject) -> None:
        nova = _novas(obj.obj_name()).obj_from_primitive(
            obj.to_nova_primitive())
        self.assertEqual('nova', nova.OBJ_PROJECT_NAMESPACE)
        # Nova's object holds exactly our data...
        utils.assert_objects_equal(self, obj, nova)
        # ...and comes back as the object we started from.
        back = type(obj).from_nova_primitive(nova.obj_to_primitive())
        self.assertIsInstance(back, type(obj))
        self.assertEqual(obj, back)
        utils.assert_objects_equal(self, obj, back)

    def test_round_trips(self) -> None:
        for name, build in OUR_CASES.items():
            with self.subTest(name):
                self._round_trip(build())

    def test_single_objects(self) -> None:
        topology = host()
        self._round_trip(topology.cells[0])
        self._round_trip(topology.cells[0].mempages[1])
        self._round_trip(topology.cells[1].network_metadata)
        self._round_trip(isolate_guest().cells[0])

    def test_siblings_order_survives(self) -> None:
        nova = nova_objects.NUMATopology.obj_from_primitive(
            host().to_nova_primitive())
        self.assertEqual([{3, 7}, {2, 6}, {0, 4}, {1, 5}],
                         nova.cells[0].siblings)
        self.assertEqual([{10}, {8}, {11}, {9}], nova.cells[1].siblings)

    def test_novas_code_reads_the_converted_objects(self) -> None:
        # Nova's own claim code counts cpuset_reserved as pinned.
        nova_host = nova_objects.NUMATopology.obj_from_primitive(
            host().to_nova_primitive())
        nova_guest = nova_objects.InstanceNUMATopology.obj_from_primitive(
            isolate_guest().to_nova_primitive())
        self.assertTrue(nova_guest.emulator_threads_isolated)
        self.assertEqual({11}, nova_guest.cpuset_reserved)
        self.assertEqual({3, 5, 8, 10}, nova_guest.cpu_pinning)
        used = utils.nova_hardware.numa_usage_from_instance_numa(
            nova_host, nova_guest)
        self.assertEqual({2, 3, 4, 5}, used.cells[0].pinned_cpus)
        self.assertEqual({8, 10, 11}, used.cells[1].pinned_cpus)
        self.assertEqual(512, used.cells[1].mempages[1].used)

    def test_downgraded_for_an_older_nova(self) -> None:
        nova = nova_objects.InstanceNUMATopology.obj_from_primitive(
            shared_guest().to_nova_primitive(
                target_version='1.3',
                version_manifest={'InstanceNUMATopology': '1.3',
                                  'InstanceNUMACell': '1.4'}))
        self.assertEqual('1.4', nova.cells[0].VERSION)
        self.assertEqual({0, 1}, nova.cells[0].cpuset)
        self.assertNotIn('pcpuset', nova.cells[0])

    def test_isolate_for_a_too_old_nova_is_refused(self) -> None:
        error = self.assertRaises(
            ovo_exception.ObjectActionError,
            isolate_guest().to_nova_primitive, target_version='1.2')
        self.assertIn("emulator_threads_policy='isolate'", str(error))

    def test_a_nova_object_inside_ours_is_refused(self) -> None:
        topology = numa.NUMATopology(cells=[
            nova_objects.NUMACell.obj_from_primitive(
                host().cells[0].to_nova_primitive())])
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  topology.to_nova_primitive)
        self.assertEqual(
            'Cannot convert nova.NUMACell: it is nested in a tree of '
            'nova_emulator_threads objects, and the objects of two '
            'projects cannot be mixed.', str(error))


def _nova_host() -> Any:
    """A host as Nova's libvirt driver reports it: 2 cells, SMT2."""
    cells = []
    for cell_id in (0, 1):
        first = cell_id * 8
        cpus = set(range(first, first + 8))
        cells.append(nova_objects.NUMACell(
            id=cell_id, socket=cell_id, cpuset={first}, pcpuset=cpus - {first},
            memory=8192, cpu_usage=0, memory_usage=0, pinned_cpus=set(),
            siblings=[{first + i, first + i + 4} for i in range(4)],
            mempages=[
                nova_objects.NUMAPagesTopology(size_kb=4, total=1048576,
                                               used=0, reserved=0),
                nova_objects.NUMAPagesTopology(size_kb=2048, total=1024,
                                               used=0, reserved=0)],
            network_metadata=nova_objects.NetworkMetadata(
                physnets=set(), tunneled=False)))
    return nova_objects.NUMATopology(cells=cells)


def _nova_guest(extra_specs: dict[str, str], vcpus: int = 4) -> Any:
    """A guest as Nova's API builds it, fitted by Nova's scheduler code."""
    flavor = nova_objects.Flavor(
        vcpus=vcpus, memory_mb=2048, extra_specs=extra_specs)
    image_meta = nova_objects.ImageMeta.from_dict({'properties': {}})
    request = utils.nova_hardware.numa_get_constraints(flavor, image_meta)
    return request, utils.nova_hardware.numa_fit_instance_to_host(
        _nova_host(), request, provider_mapping=None)


class TestNovaToOurs(test_base.BaseTestCase):
    """Nova's -> ours -> Nova's, on objects built by Nova's own code."""

    def _round_trip(self, nova: ovo_base.VersionedObject) -> None:
        ours = _ours(nova.obj_name())
        obj = ours.from_nova_primitive(  # type: ignore[attr-defined]
            nova.obj_to_primitive())
        self.assertEqual('nova_emulator_threads', obj.OBJ_PROJECT_NAMESPACE)
        utils.assert_objects_equal(self, nova, obj)
        back = _novas(nova.obj_name()).obj_from_primitive(
            obj.to_nova_primitive())
        utils.assert_objects_equal(self, nova, back)

    def test_isolate(self) -> None:
        request, fitted = _nova_guest({
            'hw:cpu_policy': 'dedicated', 'hw:numa_nodes': '2',
            'hw:emulator_threads_policy': 'isolate',
            'hw:mem_page_size': 'large'})
        self.assertIsNotNone(fitted)
        self.assertTrue(fitted.cells[0].cpuset_reserved)
        self._round_trip(request)
        self._round_trip(fitted)

    def test_mixed(self) -> None:
        request, fitted = _nova_guest({
            'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '^0',
            'hw:emulator_threads_policy': 'share'})
        self.assertIsNotNone(fitted)
        self.assertEqual({0}, fitted.cells[0].cpuset)
        self.assertEqual({1, 2, 3}, fitted.cells[0].pcpuset)
        self._round_trip(request)
        self._round_trip(fitted)

    def test_shared(self) -> None:
        request, fitted = _nova_guest({'hw:numa_nodes': '1'}, vcpus=1)
        self.assertIsNone(request.emulator_threads_policy)
        self._round_trip(request)
        self._round_trip(fitted)

    def test_host(self) -> None:
        self._round_trip(_nova_host())

    def test_host_after_claims(self) -> None:
        _, fitted = _nova_guest({
            'hw:cpu_policy': 'dedicated',
            'hw:emulator_threads_policy': 'isolate'})
        used = utils.nova_hardware.numa_usage_from_instance_numa(
            _nova_host(), fitted)
        self.assertEqual(5, len(used.cells[0].pinned_cpus))
        self._round_trip(used)

    def test_old_versions_are_kept(self) -> None:
        # A primitive an older Nova sent: the versions survive the trip.
        primitive = _nova_host().obj_to_primitive(
            target_version='1.2',
            version_manifest={'NUMATopology': '1.2', 'NUMACell': '1.3',
                              'NUMAPagesTopology': '1.0',
                              'NetworkMetadata': '1.0'})
        old = nova_objects.NUMATopology.obj_from_primitive(primitive)
        self.assertEqual('1.3', old.cells[0].VERSION)
        obj = numa.NUMATopology.from_nova_primitive(old.obj_to_primitive())
        self.assertEqual('1.3', obj.cells[0].VERSION)
        self.assertNotIn('pcpuset', obj.cells[0])
        self._round_trip(old)


class TestConversionErrors(test_base.BaseTestCase):

    def test_wrong_object_type(self) -> None:
        primitive = nova_objects.NUMATopology(cells=[]).obj_to_primitive()
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  numa.NUMACell.from_nova_primitive,
                                  primitive)
        self.assertEqual('Cannot convert nova.NUMATopology 1.2: a NUMACell '
                         'was expected.', str(error))

    def test_newer_version(self) -> None:
        primitive = _nova_host().obj_to_primitive()
        primitive['nova_object.data']['cells'][0][
            'nova_object.version'] = '1.6'
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  numa.NUMATopology.from_nova_primitive,
                                  primitive)
        self.assertEqual(
            'Cannot convert nova.NUMATopology 1.2: it holds a NUMACell 1.6, '
            'and this release of nova-emulator-threads knows NUMACell up to '
            'version 1.5.', str(error))

    def test_object_without_counterpart(self) -> None:
        primitive = nova_objects.Flavor(vcpus=1).obj_to_primitive()
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  numa.NUMATopology.from_nova_primitive,
                                  primitive)
        self.assertEqual('Cannot convert nova.Flavor: nova-emulator-threads '
                         'has no counterpart of it.', str(error))

    def test_other_namespace(self) -> None:
        primitive = host().to_nova_primitive()
        primitive['nova_object.namespace'] = 'os_vif'
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  numa.NUMATopology.from_nova_primitive,
                                  primitive)
        self.assertEqual('Cannot convert os_vif.NUMATopology: only nova '
                         'objects can be converted here.', str(error))

    def test_invalid_value(self) -> None:
        primitive = isolate_guest().to_nova_primitive()
        primitive['nova_object.data']['emulator_threads_policy'] = 'pinned'
        error = self.assertRaises(
            exception.ObjectConversionFailed,
            numa.InstanceNUMATopology.from_nova_primitive, primitive)
        self.assertIn('Cannot convert nova.InstanceNUMATopology 1.3: ',
                      str(error))
        self.assertIn('pinned', str(error))

    def test_not_a_nova_primitive(self) -> None:
        # Our own primitive, say, passed by mistake.
        error = self.assertRaises(exception.ObjectConversionFailed,
                                  numa.NUMATopology.from_nova_primitive,
                                  host().obj_to_primitive())
        self.assertEqual("Cannot convert this dict: it has no "
                         "'nova_object.name' key: it is not a Nova object's "
                         "obj_to_primitive().", str(error))

    def test_input_is_not_modified(self) -> None:
        primitive = isolate_guest().to_nova_primitive()
        before = repr(primitive)
        numa.InstanceNUMATopology.from_nova_primitive(primitive)
        self.assertEqual(before, repr(primitive))
        self.assertIsInstance(primitive['nova_object.data']['cells'],
                              collections.abc.Sequence)
