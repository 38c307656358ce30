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

"""The versioned objects: pinned hashes, downgrades, refused downgrades."""

import warnings
from typing import Any

from oslo_utils import versionutils
from oslotest import base as test_base

with warnings.catch_warnings():
    # oslo_versionedobjects.base imports oslo.messaging and the fixture
    # oslo.service: both pull in eventlet, which warns that it is
    # deprecated; that is not this project's business.
    warnings.simplefilter('ignore')
    from oslo_versionedobjects import base as ovo_base
    from oslo_versionedobjects import exception as ovo_exception
    from oslo_versionedobjects import fixture as ovo_fixture

from nova_emulator_threads import objects
from nova_emulator_threads.objects import base
from nova_emulator_threads.objects import fields
from nova_emulator_threads.objects import network_metadata
from nova_emulator_threads.objects import numa
from nova_emulator_threads.objects import virt_cpu_topology

# Six of these are the hashes Nova pins for its own objects of the same
# name (nova/tests/unit/objects/test_objects.py): same fields, same
# versions. InstanceNUMATopology differs in having no remotable (database)
# methods.
object_data = {
    'InstanceNUMACell': '1.6-25d9120d83a18356f4146f2a6fe2cc8d',
    'InstanceNUMATopology': '1.3-b7b14056ebcb03f2f406310ff454f9a9',
    'NUMACell': '1.5-2592de3c926a7840d763bcc85f81afa7',
    'NUMAPagesTopology': '1.1-edab9fa2dc43c117a38d600be54b4542',
    'NUMATopology': '1.2-c63fad38be73b6afd04715c9c1b29220',
    'NetworkMetadata': '1.0-2cb8d21b34f87b0261d3e1d1ae5cf218',
    'VirtCPUTopology': '1.0-fc694de72e20298f7c6bab1083fd4563',
}

# ObjectField dependencies (the checker does not follow lists of objects).
object_relationships = {
    'InstanceNUMACell': {'VirtCPUTopology': '1.0'},
    'NUMACell': {'NetworkMetadata': '1.0'},
}


def _data(obj: ovo_base.VersionedObject, version: str,
          **manifest: str) -> dict[str, Any]:
    """``obj`` as a primitive of ``version``: its fields."""
    primitive = obj.obj_to_primitive(
        target_version=version, version_manifest=manifest or None)
    if primitive['versioned_object.version'] != version:
        raise AssertionError(f"{primitive['versioned_object.version']} is "
                             f'not the version asked for, {version}')
    data: dict[str, Any] = primitive['versioned_object.data']
    return data


def _pages() -> numa.NUMAPagesTopology:
    return numa.NUMAPagesTopology(size_kb=2048, total=512, used=4,
                                  reserved=64)


def _host_cell() -> numa.NUMACell:
    return numa.NUMACell(
        id=1, cpuset={0, 1}, pcpuset={2, 3, 4, 5}, memory=4096,
        cpu_usage=2, memory_usage=1024, pinned_cpus={2},
        siblings=[{2, 4}, {3, 5}, {0, 1}], mempages=[_pages()],
        network_metadata=network_metadata.NetworkMetadata(
            physnets={'physnet0'}, tunneled=True),
        socket=0)


def _guest_cell(**kwargs: Any) -> numa.InstanceNUMACell:
    values: dict[str, Any] = dict(
        id=0, cpuset=set(), pcpuset={0, 1}, memory=2048, pagesize=2048,
        cpu_policy=fields.CPUAllocationPolicy.DEDICATED,
        cpu_thread_policy=fields.CPUThreadAllocationPolicy.PREFER,
        cpu_topology=virt_cpu_topology.VirtCPUTopology(
            sockets=1, cores=2, threads=1))
    values.update(kwargs)
    cell = numa.InstanceNUMACell(**values)
    if 'cpu_pinning_raw' not in kwargs:
        cell.cpu_pinning = {0: 2, 1: 3}
    return cell


def _guest(policy: str | None, **cell_kwargs: Any,
           ) -> numa.InstanceNUMATopology:
    topology = numa.InstanceNUMATopology(
        instance_uuid='3a1a5f2c-59fd-4bd8-9d6c-1f6b0a2b3c4d',
        cells=[_guest_cell(**cell_kwargs)])
    if policy is not None:
        topology.emulator_threads_policy = policy
    return topology


class TestObjectVersions(test_base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        objects.register_all()
        self.checker = ovo_fixture.ObjectVersionChecker(
            base.EmulatorThreadsObjectRegistry.obj_classes())

    def test_hashes(self) -> None:
        expected, actual = self.checker.test_hashes(object_data)
        self.assertEqual(expected, actual,
                         'Some objects have changed; please make sure the '
                         'versions have been bumped, and then update their '
                         'hashes here.')

    def test_relationships(self) -> None:
        expected, actual = self.checker.test_relationships(
            object_relationships)
        self.assertEqual(expected, actual,
                         'Some objects have changed dependencies; update '
                         'their obj_relationships and the map here.')

    def test_relationships_in_order(self) -> None:
        self.checker.test_relationships_in_order()

    def test_relationships_end_at_current_child_versions(self) -> None:
        # The last entry of each map must name the child's current version,
        # or bumping a child without its parents' maps goes unnoticed.
        registry = base.EmulatorThreadsObjectRegistry.obj_classes()
        for name, classes in registry.items():
            cls = classes[0]
            for field_name, field in cls.fields.items():
                if not isinstance(field, (fields.ObjectField,
                                          fields.ListOfObjectsField)):
                    continue
                self.assertIn(field_name, cls.obj_relationships,
                              f'{name}.{field_name} has no relationship')
                child = registry[field.objname][0]
                self.assertEqual(
                    child.VERSION, cls.obj_relationships[field_name][-1][1],
                    f'{name}.{field_name}')

    def test_compatibility_routines(self) -> None:
        # Every object filled in (children included, so the relationship
        # maps are used), backported to every older version. The values
        # are ones every version can carry: 'share', no cpuset_reserved,
        # 'dedicated' rather than 'mixed'.
        init_kwargs: dict[type[ovo_base.VersionedObject], dict[str, Any]]
        init_kwargs = {
            numa.NUMAPagesTopology: _pages().obj_get_changes(),
            numa.NUMACell: _host_cell().obj_get_changes(),
            numa.NUMATopology: {'cells': [_host_cell(), _host_cell()]},
            numa.InstanceNUMACell: _guest_cell().obj_get_changes(),
            numa.InstanceNUMATopology:
                _guest('share').obj_get_changes(),
            network_metadata.NetworkMetadata: {
                'physnets': {'foo'}, 'tunneled': False},
            virt_cpu_topology.VirtCPUTopology: {'threads': 2},
        }
        self.checker.test_compatibility_routines(init_kwargs=init_kwargs)

    def test_versions_are_novas(self) -> None:
        # Conversion to and from Nova's objects relies on equal versions.
        self.assertEqual(
            {name: hash.split('-')[0] for name, hash in object_data.items()},
            {name: classes[0].VERSION for name, classes
             in base.EmulatorThreadsObjectRegistry.obj_classes().items()})


class TestRegistry(test_base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        objects.register_all()

    def test_our_objects_are_not_in_the_global_registry(self) -> None:
        # Registered there they would replace Nova's classes of the same
        # name and version in any process that loads both.
        for classes in ovo_base.VersionedObjectRegistry.obj_classes().values():
            for cls in classes:
                self.assertFalse(issubclass(cls, base.EmulatorThreadsObject),
                                 cls)

    def test_lookup_uses_our_registry(self) -> None:
        primitive = _host_cell().obj_to_primitive()
        self.assertEqual('nova_emulator_threads',
                         primitive['versioned_object.namespace'])
        cell = numa.NUMACell.obj_from_primitive(primitive)
        self.assertIsInstance(cell, numa.NUMACell)
        self.assertEqual(_host_cell(), cell)

    def test_older_version_is_compatible(self) -> None:
        cls = base.EmulatorThreadsObject.obj_class_from_name('NUMACell',
                                                            '1.3')
        self.assertIs(numa.NUMACell, cls)

    def test_newer_version_is_refused(self) -> None:
        self.assertRaises(ovo_exception.IncompatibleObjectVersion,
                          base.EmulatorThreadsObject.obj_class_from_name,
                          'NUMACell', '1.6')

    def test_unknown_name_is_refused(self) -> None:
        self.assertRaises(ovo_exception.UnsupportedObjectError,
                          base.EmulatorThreadsObject.obj_class_from_name,
                          'Instance', '1.0')


class TestEquality(test_base.BaseTestCase):

    def test_change_tracking_is_ignored(self) -> None:
        cell = _host_cell()
        reset = _host_cell()
        reset.obj_reset_changes(recursive=True)
        self.assertEqual(cell, reset)

    def test_different_value(self) -> None:
        cell = _host_cell()
        cell.siblings = [{0, 1}, {2, 4}, {3, 5}]
        self.assertNotEqual(_host_cell(), cell)

    def test_nested_difference(self) -> None:
        cell = _host_cell()
        cell.mempages[0].reserved = 0
        self.assertNotEqual(_host_cell(), cell)

    def test_unset_differs_from_set(self) -> None:
        cell = _host_cell()
        del cell.socket
        self.assertNotEqual(_host_cell(), cell)

    def test_different_object_type(self) -> None:
        self.assertNotEqual(
            virt_cpu_topology.VirtCPUTopology(),
            network_metadata.NetworkMetadata())
        self.assertNotEqual(numa.NUMAPagesTopology(), {})

    def test_not_hashable(self) -> None:
        # Mutable and compared by value, like Nova's.
        self.assertRaises(TypeError, hash, _pages())


class TestInstanceNUMACell(test_base.BaseTestCase):

    def test_defaults_are_set_at_init(self) -> None:
        # As Nova's (an ephemeral object): a conversion must not turn an
        # unset field into a set one.
        cell = numa.InstanceNUMACell(id=0, cpuset={0}, pcpuset=set(),
                                     memory=512)
        self.assertIsNone(cell.cpuset_reserved)
        self.assertIsNone(cell.pagesize)
        self.assertIsNone(cell.cpu_pinning)
        self.assertIsNone(cell.cpu_policy)
        self.assertIsNone(cell.cpu_thread_policy)
        self.assertFalse(cell.obj_attr_is_set('cpu_topology'))

    def test_cpu_pinning_proxies_raw(self) -> None:
        cell = _guest_cell()
        self.assertEqual({'0': 2, '1': 3}, cell.cpu_pinning_raw)
        self.assertEqual({0: 2, 1: 3}, cell.cpu_pinning)
        cell.cpu_pinning = None
        self.assertIsNone(cell.cpu_pinning_raw)

    def test_topology_helpers(self) -> None:
        topology = _guest('isolate', cpuset_reserved={6})
        self.assertTrue(topology.emulator_threads_isolated)
        self.assertEqual({2, 3}, topology.cpu_pinning)
        self.assertEqual({6}, topology.cpuset_reserved)
        self.assertEqual(1, len(topology))
        self.assertFalse(_guest(None).emulator_threads_isolated)
        self.assertFalse(_guest('share').emulator_threads_isolated)


class TestDowngrades(test_base.BaseTestCase):
    """One test per version bump, newest first."""

    # NUMAPagesTopology

    def test_pages_1_1_reserved(self) -> None:
        self.assertIn('reserved', _data(_pages(), '1.1'))
        data = _data(_pages(), '1.0')
        self.assertNotIn('reserved', data)
        self.assertEqual(512, data['total'])

    # NUMACell

    def test_host_cell_1_5_socket(self) -> None:
        self.assertEqual(0, _data(_host_cell(), '1.5')['socket'])
        data = _data(_host_cell(), '1.4')
        self.assertNotIn('socket', data)
        self.assertEqual({2, 3, 4, 5}, set(data['pcpuset']))

    def test_host_cell_1_4_pcpuset(self) -> None:
        data = _data(_host_cell(), '1.3')
        self.assertNotIn('pcpuset', data)
        self.assertIn('network_metadata', data)

    def test_host_cell_1_3_network_metadata(self) -> None:
        data = _data(_host_cell(), '1.2')
        self.assertNotIn('network_metadata', data)
        self.assertIn('mempages', data)

    def test_host_cell_1_2_mempages(self) -> None:
        data = _data(_host_cell(), '1.1')
        self.assertNotIn('mempages', data)
        self.assertEqual([(2, 4), (3, 5), (0, 1)],
                         [tuple(sorted(s)) for s in data['siblings']])

    def test_host_cell_1_1_pinned_cpus_and_siblings(self) -> None:
        data = _data(_host_cell(), '1.0')
        self.assertNotIn('pinned_cpus', data)
        self.assertNotIn('siblings', data)
        self.assertEqual({0, 1}, set(data['cpuset']))

    def test_host_cell_mempages_follow_manifest(self) -> None:
        data = _data(_host_cell(), '1.5', NUMAPagesTopology='1.0',
                     NetworkMetadata='1.0')
        pages = data['mempages'][0]
        self.assertEqual('1.0', pages['versioned_object.version'])
        self.assertNotIn('reserved', pages['versioned_object.data'])

    # NUMATopology

    def test_host_1_2_cells_1_2(self) -> None:
        host = numa.NUMATopology(cells=[_host_cell()])
        cell = _data(host, '1.2')['cells'][0]
        self.assertEqual('1.5', cell['versioned_object.version'])
        cell = _data(host, '1.1')['cells'][0]
        self.assertEqual('1.1', cell['versioned_object.version'])
        self.assertNotIn('mempages', cell['versioned_object.data'])

    def test_host_1_1_cells_1_1(self) -> None:
        host = numa.NUMATopology(cells=[_host_cell()])
        cell = _data(host, '1.0')['cells'][0]
        self.assertEqual('1.0', cell['versioned_object.version'])
        self.assertNotIn('siblings', cell['versioned_object.data'])

    # InstanceNUMACell

    def test_guest_cell_1_6_mixed_is_refused(self) -> None:
        # Nova's rule: a 'mixed' cell has no meaning before 1.6.
        cell = _guest_cell(cpu_policy=fields.CPUAllocationPolicy.MIXED,
                           cpuset={2, 3})
        self.assertEqual('mixed', _data(cell, '1.6')['cpu_policy'])
        error = self.assertRaises(ovo_exception.ObjectActionError,
                                  cell.obj_to_primitive, '1.5')
        self.assertIn('cpu_policy=mixed not supported', str(error))

    def test_guest_cell_1_6_dedicated(self) -> None:
        data = _data(_guest_cell(), '1.5')
        self.assertEqual([], list(data['cpuset']))
        self.assertEqual({0, 1}, set(data['pcpuset']))

    def test_guest_cell_1_5_pcpuset_dedicated(self) -> None:
        # Before 1.5 the pinned vCPUs of a dedicated cell are in cpuset.
        data = _data(_guest_cell(), '1.4')
        self.assertNotIn('pcpuset', data)
        self.assertEqual({0, 1}, set(data['cpuset']))

    def test_guest_cell_1_5_pcpuset_shared(self) -> None:
        cell = _guest_cell(cpuset={0, 1}, pcpuset=set(),
                           cpu_policy=fields.CPUAllocationPolicy.SHARED,
                           cpu_pinning_raw=None)
        data = _data(cell, '1.4')
        self.assertNotIn('pcpuset', data)
        self.assertEqual({0, 1}, set(data['cpuset']))

    def test_guest_cell_1_4_cpuset_reserved_is_refused(self) -> None:
        cell = _guest_cell(cpuset_reserved={6, 7})
        self.assertEqual({6, 7}, set(_data(cell, '1.4')['cpuset_reserved']))
        for version in ('1.3', '1.0'):
            error = self.assertRaises(ovo_exception.ObjectActionError,
                                      cell.obj_to_primitive, version)
            self.assertIn(f'InstanceNUMACell {version} cannot carry '
                          'cpuset_reserved=6-7', str(error))

    def test_guest_cell_1_4_no_cpuset_reserved_is_dropped(self) -> None:
        reserved: set[int] | None
        for reserved in (None, set()):
            data = _data(_guest_cell(cpuset_reserved=reserved), '1.3')
            self.assertNotIn('cpuset_reserved', data)
            self.assertIn('cpu_policy', data)

    def test_guest_cell_1_3_policies(self) -> None:
        data = _data(_guest_cell(), '1.2')
        self.assertNotIn('cpu_policy', data)
        self.assertNotIn('cpu_thread_policy', data)
        self.assertEqual({'0': 2, '1': 3}, data['cpu_pinning_raw'])

    def test_guest_cell_1_2_pinning_and_topology(self) -> None:
        data = _data(_guest_cell(cpu_policy=None), '1.1')
        self.assertNotIn('cpu_pinning_raw', data)
        self.assertNotIn('cpu_topology', data)
        self.assertEqual(2048, data['pagesize'])

    def test_guest_cell_1_1_pagesize(self) -> None:
        data = _data(_guest_cell(cpu_policy=None), '1.0')
        self.assertNotIn('pagesize', data)
        self.assertEqual(2048, data['memory'])

    # InstanceNUMATopology

    def test_guest_1_3_isolate_is_refused(self) -> None:
        topology = _guest('isolate')
        self.assertEqual('isolate',
                         _data(topology, '1.3')['emulator_threads_policy'])
        for version in ('1.2', '1.1', '1.0'):
            error = self.assertRaises(ovo_exception.ObjectActionError,
                                      topology.obj_to_primitive, version)
            self.assertIn(f"InstanceNUMATopology {version} cannot carry "
                          "emulator_threads_policy='isolate'", str(error))

    def test_guest_1_3_isolate_is_refused_by_manifest(self) -> None:
        # An RPC peer announces its versions in a manifest; a peer with the
        # current topology but an InstanceNUMACell before 1.4 cannot hold
        # the reserved pCPUs either.
        topology = _guest('isolate', cpuset_reserved={6})
        error = self.assertRaises(
            ovo_exception.ObjectActionError, topology.obj_to_primitive,
            '1.3', {'InstanceNUMATopology': '1.3',
                    'InstanceNUMACell': '1.3'})
        self.assertIn('cpuset_reserved=6', str(error))

    def test_guest_1_3_share_is_dropped(self) -> None:
        for policy in ('share', None):
            data = _data(_guest(policy), '1.2')
            self.assertNotIn('emulator_threads_policy', data)
            cell = data['cells'][0]
            self.assertEqual('1.2', cell['versioned_object.version'])
            self.assertNotIn('cpu_policy', cell['versioned_object.data'])

    def test_guest_1_2_cells_1_1(self) -> None:
        cell = _data(_guest('share'), '1.1')['cells'][0]
        self.assertEqual('1.1', cell['versioned_object.version'])
        self.assertNotIn('cpu_pinning_raw', cell['versioned_object.data'])

    def test_guest_1_1_cells_1_0(self) -> None:
        cell = _data(_guest('share'), '1.0')['cells'][0]
        self.assertEqual('1.0', cell['versioned_object.version'])
        self.assertNotIn('pagesize', cell['versioned_object.data'])

    def test_every_bump_is_tested(self) -> None:
        # A new version must come with its downgrade test above.
        bumps = {cls: versionutils.convert_version_to_tuple(cls.VERSION)[1]
                 for cls in (numa.NUMAPagesTopology, numa.NUMACell,
                             numa.NUMATopology, numa.InstanceNUMACell,
                             numa.InstanceNUMATopology)}
        self.assertEqual({numa.NUMAPagesTopology: 1, numa.NUMACell: 5,
                          numa.NUMATopology: 2, numa.InstanceNUMACell: 6,
                          numa.InstanceNUMATopology: 3}, bumps)
