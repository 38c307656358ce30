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

"""Upgrades: every generated topology, at every older version.

``tests/unit/test_objects.py`` has one downgrade test per version bump on
hand-written objects, and ``tests/unit/test_topology_objects.py``
round-trips generated topologies through Nova's objects at the current
versions. Here the topologies are the engine's own (hosts from
capabilities XML, guests fitted and claimed on them) and each goes to
every version an older peer may announce (every version of the object,
with every child version its relationship map allows):

* a downgrade either keeps the meaning, or raises: what the target
  version carries arrives unchanged, what it lacks is dropped, and it
  raises exactly when that would drop ``cpuset_reserved``, the ``isolate``
  emulator threads policy, or a ``mixed`` cell's meaning;
* where Nova's own objects make the same downgrade, they produce the same
  data, except that they silently drop what ours refuse to;
* what a peer sends at any version converts to Nova's objects and back
  unchanged.

Arbitrary topologies (any values, as ``test_topology_objects`` generates
them) are checked for the safety part alone: nothing emulator-related is
ever dropped silently.
"""

import collections
import dataclasses
import warnings
from typing import Any

import hypothesis
from hypothesis import strategies as st
from oslo_utils import versionutils
import testtools

with warnings.catch_warnings():
    # oslo.versionedobjects and Nova pull in eventlet, which warns that it
    # is deprecated.
    warnings.simplefilter('ignore')
    from nova import exception as nova_exception
    from oslo_versionedobjects import base as ovo_base
    from oslo_versionedobjects import exception as ovo_exception

from nova_emulator_threads.objects import fields
from nova_emulator_threads.objects import numa
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt import topology_objects
from tests.unit.objects import utils
from tests.unit import test_topology_objects
from tests.unit.virt import strategies

nova_objects = utils.nova_objects

ISOLATE = fields.CPUEmulatorThreadsPolicy.ISOLATE
MIXED = fields.CPUAllocationPolicy.MIXED
DEDICATED = fields.CPUAllocationPolicy.DEDICATED

#: What the properties exercised, over every example of this process.
STATS: collections.Counter[str] = collections.Counter()


def _versions(newest: str) -> list[str]:
    major, minor = versionutils.convert_version_to_tuple(newest)
    return ['%d.%d' % (major, m) for m in range(minor + 1)]


def _child_max(cls: type[ovo_base.VersionedObject], field: str,
               version: str) -> str:
    """The newest child version ``cls`` at ``version`` can hold."""
    target = versionutils.convert_version_to_tuple(version)
    newest = None
    for parent, child in cls.obj_relationships[field]:
        if versionutils.convert_version_to_tuple(parent) <= target:
            newest = child
    assert newest is not None
    return newest


def _older_or_equal(versions: list[str], limit: str) -> list[str]:
    top = versionutils.convert_version_to_tuple(limit)
    return [v for v in versions
            if versionutils.convert_version_to_tuple(v) <= top]


def _instance_manifests() -> list[dict[str, str]]:
    """Every (InstanceNUMATopology, InstanceNUMACell) a peer may have."""
    manifests = []
    for version in _versions(numa.InstanceNUMATopology.VERSION):
        newest_cell = _child_max(numa.InstanceNUMATopology, 'cells', version)
        for cell in _older_or_equal(_versions(numa.InstanceNUMACell.VERSION),
                                    newest_cell):
            manifests.append({'InstanceNUMATopology': version,
                              'InstanceNUMACell': cell,
                              'VirtCPUTopology': '1.0'})
    return manifests


def _host_manifests() -> list[dict[str, str]]:
    """Every (NUMATopology, NUMACell, NUMAPagesTopology) a peer may have."""
    manifests = []
    for version in _versions(numa.NUMATopology.VERSION):
        newest_cell = _child_max(numa.NUMATopology, 'cells', version)
        for cell in _older_or_equal(_versions(numa.NUMACell.VERSION),
                                    newest_cell):
            pages = _versions(numa.NUMAPagesTopology.VERSION)
            if versionutils.convert_version_to_tuple(cell) < (1, 2):
                pages = pages[-1:]  # no mempages yet: one is enough
            for page in pages:
                manifests.append({'NUMATopology': version,
                                  'NUMACell': cell,
                                  'NUMAPagesTopology': page,
                                  'NetworkMetadata': '1.0'})
    return manifests


INSTANCE_MANIFESTS = _instance_manifests()
HOST_MANIFESTS = _host_manifests()


def _at_least(version: str, *minimum: int) -> bool:
    return versionutils.convert_version_to_tuple(version) >= minimum


# -- what a version carries --------------------------------------------------


def _must_refuse(inst: topology.InstanceTopology,
                 manifest: dict[str, str]) -> bool:
    """Whether the downgrade would lose emulator threads or mixed meaning."""
    version = manifest['InstanceNUMATopology']
    cell = manifest['InstanceNUMACell']
    if inst.emulator_threads_policy == ISOLATE and not _at_least(
            version, 1, 3):
        return True
    if not _at_least(cell, 1, 4) and any(c.cpuset_reserved
                                         for c in inst.cells):
        return True
    return not _at_least(cell, 1, 6) and any(
        c.cpu_policy == MIXED for c in inst.cells)


def _as_received(inst: topology.InstanceTopology,
                 manifest: dict[str, str]) -> topology.InstanceTopology:
    """What a peer at ``manifest`` holds: the fields its versions define,
    in the form they had then.
    """
    version = manifest['InstanceNUMATopology']
    cell_version = manifest['InstanceNUMACell']
    cells = []
    for cell in inst.cells:
        cpuset, pcpuset = cell.cpuset, cell.pcpuset
        if not _at_least(cell_version, 1, 5):
            # Before 1.5 a dedicated cell's vCPUs were all in cpuset.
            if cell.cpu_policy == DEDICATED:
                cpuset = pcpuset
            pcpuset = frozenset()
        cells.append(topology.InstanceCell(
            id=cell.id, cpuset=cpuset, pcpuset=pcpuset, memory=cell.memory,
            pagesize=(cell.pagesize if _at_least(cell_version, 1, 1)
                      else None),
            cpu_policy=(cell.cpu_policy if _at_least(cell_version, 1, 3)
                        else None),
            cpu_thread_policy=(cell.cpu_thread_policy
                               if _at_least(cell_version, 1, 3) else None),
            cpu_pinning=(cell.cpu_pinning if _at_least(cell_version, 1, 2)
                         else None),
            cpuset_reserved=(cell.cpuset_reserved or None
                             if _at_least(cell_version, 1, 4) else None)))
    return topology.InstanceTopology(
        cells=tuple(cells),
        emulator_threads_policy=(inst.emulator_threads_policy
                                 if _at_least(version, 1, 3) else None))


def _normalized(inst: topology.InstanceTopology,
                ) -> topology.InstanceTopology:
    """Without what conversions do not carry; an empty ``cpuset_reserved``
    and None mean the same: no emulator pCPU.
    """
    return topology.InstanceTopology(
        cells=tuple(dataclasses.replace(
            cell, cpuset_reserved=cell.cpuset_reserved or None)
            for cell in inst.cells),
        emulator_threads_policy=inst.emulator_threads_policy)


# -- generated topologies ----------------------------------------------------


@st.composite
def engine_topologies(draw: st.DrawFn) -> tuple[
        topology.HostTopology, list[topology.InstanceTopology]]:
    """A generated host after the engine fitted and claimed guests on it,
    and the guests: fitted, or the request where nothing fitted.
    """
    host = draw(strategies.hosts()).host
    guests = []
    # Half of them isolate: the emulator thread fields are what matters.
    for flavor in draw(st.lists(strategies.flavors() | strategies.flavors(
            isolate=True), min_size=1, max_size=3)):
        inst = hardware.instance_topology_from_request(flavor.request())
        if inst is None:
            continue
        fitted = hardware.fit_instance_to_host(host, inst)
        if fitted is None:
            guests.append(inst)
            continue
        host = hardware.numa_usage_from_instance(host, fitted)
        guests.append(fitted)
    return host, guests


#: Each example checks every guest at every version a peer may have (13
#: version pairs): a twentieth of the profile's examples (250 in CI) makes
#: more than 5,000 downgrades.
EVERY_VERSION = hypothesis.settings(
    max_examples=max(1, hypothesis.settings.default.max_examples // 20),
    suppress_health_check=[hypothesis.HealthCheck.too_slow,
                           hypothesis.HealthCheck.data_too_large])

#: A host is up to 16 cells, each a tree of objects, at 13 version
#: triples: a fiftieth of the profile's examples (100 in CI).
EVERY_HOST_VERSION = hypothesis.settings(
    EVERY_VERSION,
    max_examples=max(1, hypothesis.settings.default.max_examples // 50))


class TestInstanceDowngrades(testtools.TestCase):

    def _check(self, inst: topology.InstanceTopology) -> None:
        obj = topology_objects.instance_to_object(inst)
        nova = nova_objects.InstanceNUMATopology.obj_from_primitive(
            obj.to_nova_primitive())
        for manifest in INSTANCE_MANIFESTS:
            version = manifest['InstanceNUMATopology']
            where = repr(manifest)
            # Nova's own downgrade, for comparison (Nova refuses only
            # 'mixed' before 1.6).
            novas = None
            try:
                novas = numa.InstanceNUMATopology.from_nova_primitive(
                    nova.obj_to_primitive(target_version=version,
                                          version_manifest=manifest))
            except nova_exception.ObjectActionError:
                self.assertIn(MIXED, [c.cpu_policy for c in inst.cells])
            try:
                sent = obj.to_nova_primitive(
                    target_version=version, version_manifest=manifest)
            except ovo_exception.ObjectActionError as exc:
                self.assertTrue(_must_refuse(inst, manifest),
                                '%s: refused needlessly: %s' % (where, exc))
                STATS['downgrades refused'] += 1
                if novas is None:
                    continue
                # Where Nova's objects drop it silently.
                dropped = topology_objects.instance_from_object(novas)
                self.assertFalse(
                    dropped.emulator_threads_isolated and
                    dropped.cpuset_reserved == inst.cpuset_reserved, where)
                STATS['downgrades Nova makes silently'] += 1
                continue
            self.assertFalse(_must_refuse(inst, manifest),
                             '%s: dropped emulator thread or mixed meaning'
                             % where)
            for cell in sent['nova_object.data']['cells']:
                self.assertEqual(manifest['InstanceNUMACell'],
                                 cell['nova_object.version'])
            # An older Nova loads it, and sends it back: the peer holds
            # what its versions define, unchanged.
            received = nova_objects.InstanceNUMATopology.obj_from_primitive(
                sent)
            back = numa.InstanceNUMATopology.from_nova_primitive(
                received.obj_to_primitive())
            self.assertEqual(
                _normalized(_as_received(inst, manifest)),
                _normalized(topology_objects.instance_from_object(back)),
                where)
            if _at_least(manifest['InstanceNUMACell'], 1, 2):
                # Nova's objects, downgraded the same way, say the same
                # (before 1.2 Nova leaves in fields an old peer ignores).
                self.assertEqual(novas, back, where)
            STATS['downgrades kept the meaning'] += 1

    @EVERY_VERSION
    @hypothesis.given(engine_topologies())
    def test_engine_topologies(self, generated: tuple[
            topology.HostTopology, list[topology.InstanceTopology]]) -> None:
        STATS['engine examples'] += 1
        for inst in generated[1]:
            self._check(inst)
            STATS['guest topologies'] += 1
            if inst.cpuset_reserved:
                STATS['guests with cpuset_reserved'] += 1


def _assert_carried(test: testtools.TestCase, sent: Any, got: Any,
                    path: str) -> None:
    """Every field ``got`` holds is ``sent``'s value, down the tree."""
    for name in got.fields:
        if name not in got:
            continue
        value = getattr(got, name)
        where = '%s.%s' % (path, name)
        if isinstance(value, list) and value and isinstance(
                value[0], ovo_base.VersionedObject):
            sent_value = getattr(sent, name)
            test.assertEqual(len(sent_value), len(value), where)
            for index, (a, b) in enumerate(zip(sent_value, value)):
                _assert_carried(test, a, b, '%s[%d]' % (where, index))
        else:
            test.assertEqual(getattr(sent, name), value, where)


class TestHostDowngrades(testtools.TestCase):

    @EVERY_HOST_VERSION
    @hypothesis.given(engine_topologies())
    def test_engine_hosts(self, generated: tuple[
            topology.HostTopology, list[topology.InstanceTopology]]) -> None:
        host = generated[0]
        obj = topology_objects.host_to_object(host)
        for manifest in HOST_MANIFESTS:
            sent = obj.to_nova_primitive(
                target_version=manifest['NUMATopology'],
                version_manifest=manifest)
            # An older Nova loads it and sends it back.
            received = nova_objects.NUMATopology.obj_from_primitive(sent)
            back = numa.NUMATopology.from_nova_primitive(
                received.obj_to_primitive())
            cell_version = manifest['NUMACell']
            for cell in back.cells:
                self.assertEqual(cell_version, cell.VERSION)
                # The pins a peer knows of, it keeps; the dedicated set
                # arrives from 1.4 on.
                self.assertEqual(_at_least(cell_version, 1, 1),
                                 'pinned_cpus' in cell)
                self.assertEqual(_at_least(cell_version, 1, 4),
                                 'pcpuset' in cell)
            _assert_carried(self, obj, back, 'NUMATopology')
            STATS['host downgrades'] += 1


class TestArbitraryTopologies(testtools.TestCase):
    """Any values: emulator thread data is never dropped silently."""

    @EVERY_VERSION
    @hypothesis.given(test_topology_objects._instances)
    def test_never_silently_dropped(
            self, inst: topology.InstanceTopology) -> None:
        STATS['arbitrary examples'] += 1
        obj = topology_objects.instance_to_object(inst)
        for manifest in INSTANCE_MANIFESTS:
            try:
                primitive = obj.obj_to_primitive(
                    target_version=manifest['InstanceNUMATopology'],
                    version_manifest=manifest)
            except ovo_exception.ObjectActionError:
                self.assertTrue(_must_refuse(inst, manifest), manifest)
                continue
            self.assertFalse(_must_refuse(inst, manifest), manifest)
            received = topology_objects.instance_from_object(
                numa.InstanceNUMATopology.obj_from_primitive(primitive))
            self.assertEqual(inst.emulator_threads_isolated,
                             received.emulator_threads_isolated, manifest)
            self.assertEqual(
                [c.cpuset_reserved or None for c in inst.cells],
                [c.cpuset_reserved or None for c in received.cells],
                manifest)
            STATS['arbitrary downgrades'] += 1
