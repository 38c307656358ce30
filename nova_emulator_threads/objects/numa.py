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

"""NUMA topologies of hosts and guests: Nova's data model, mirrored.

``NUMAPagesTopology``, ``NUMACell`` and ``NUMATopology`` describe a host
(``nova/objects/numa.py``); ``InstanceNUMACell`` and
``InstanceNUMATopology`` a guest (``nova/objects/instance_numa.py``). The
field names, types and versions are Nova 34's, so an object converts to
Nova's and back losslessly (``to_nova_primitive`` /
``from_nova_primitive``, from the base class). Only the data model is
here: no database access, no pinning logic (that is the engine's,
``nova_emulator_threads.virt.hardware``).

Where Nova's ``obj_make_compatible`` would silently drop an emulator
thread setting, ours refuses: sending ``emulator_threads_policy='isolate'``
or a ``cpuset_reserved`` to a peer that predates them would make it run
the emulator threads on the guest's vCPU pCPUs while the placement claim
still holds the extra pCPU.
"""

from collections.abc import Mapping
from typing import Any

from oslo_utils import versionutils
from oslo_versionedobjects import exception as ovo_exception

from nova_emulator_threads import cpuset
from nova_emulator_threads.objects import base
from nova_emulator_threads.objects import fields
# Registers the objects NUMACell and InstanceNUMACell refer to by name, so
# that importing this module is enough to build and convert topologies.
from nova_emulator_threads.objects import network_metadata  # noqa: F401
from nova_emulator_threads.objects import virt_cpu_topology  # noqa: F401

__all__ = [
    'InstanceNUMACell',
    'InstanceNUMATopology',
    'NUMACell',
    'NUMAPagesTopology',
    'NUMATopology',
]


@base.EmulatorThreadsObjectRegistry.register
class NUMAPagesTopology(base.ComparableObject, base.EmulatorThreadsObject):
    """The memory pages of one size on a host NUMA cell."""

    # Version 1.0: Initial version
    # Version 1.1: Adds reserved field
    VERSION = '1.1'

    fields = {
        #: Page size in KiB (4 for small pages, 2048 or 1048576 for huge).
        'size_kb': fields.IntegerField(),
        #: Number of pages of this size on the cell.
        'total': fields.IntegerField(),
        #: Pages used by guests.
        'used': fields.IntegerField(default=0),
        #: Pages kept for the host (``[DEFAULT] reserved_huge_pages``).
        'reserved': fields.IntegerField(default=0),
    }

    def obj_make_compatible(
        self, primitive: dict[str, Any], target_version: str,
    ) -> None:
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        if target < (1, 1):
            primitive.pop('reserved', None)

    @property
    def free(self) -> int:
        """Pages neither used nor reserved."""
        # An object from a 1.0 peer has no 'reserved': it meant none.
        reserved = self.reserved if self.obj_attr_is_set('reserved') else 0
        return self.total - self.used - reserved

    @property
    def free_kb(self) -> int:
        return self.free * self.size_kb

    @property
    def total_kb(self) -> int:
        return self.total * self.size_kb


@base.EmulatorThreadsObjectRegistry.register
class NUMACell(base.ComparableObject, base.EmulatorThreadsObject):
    """One host NUMA cell: its CPUs and memory, and what guests use."""

    # Version 1.0: Initial version
    # Version 1.1: Added pinned_cpus and siblings fields
    # Version 1.2: Added mempages field
    # Version 1.3: Add network_metadata field
    # Version 1.4: Add pcpuset
    # Version 1.5: Add socket
    VERSION = '1.5'

    fields = {
        #: The cell's NUMA node id.
        'id': fields.IntegerField(read_only=True),
        #: Host CPUs for unpinned vCPUs (``[compute] cpu_shared_set``).
        'cpuset': fields.SetOfIntegersField(),
        #: Host CPUs for pinned vCPUs and emulator threads
        #: (``[compute] cpu_dedicated_set``).
        'pcpuset': fields.SetOfIntegersField(),
        #: Memory in MiB.
        'memory': fields.IntegerField(),
        #: Number of unpinned vCPUs placed on the cell.
        'cpu_usage': fields.IntegerField(default=0),
        #: Memory used by guests, in MiB.
        'memory_usage': fields.IntegerField(default=0),
        #: Host CPUs of ``pcpuset`` pinned by guests, ``cpuset_reserved``
        #: included.
        'pinned_cpus': fields.SetOfIntegersField(),
        #: SMT thread sibling sets, in the order the driver reported them:
        #: Nova's packing walks this list in order, so the order matters.
        'siblings': fields.ListOfSetsOfIntegersField(),
        #: Memory pages per page size.
        'mempages': fields.ListOfObjectsField('NUMAPagesTopology'),
        #: Physical networks with an affinity to the cell.
        'network_metadata': fields.ObjectField('NetworkMetadata'),
        #: The socket the cell belongs to, if known.
        'socket': fields.IntegerField(nullable=True),
    }

    # Used by obj_make_compatible when the caller gives no version
    # manifest: (our version, child version) from the oldest.
    obj_relationships = {
        'mempages': [('1.2', '1.1')],
        'network_metadata': [('1.3', '1.0')],
    }

    def obj_make_compatible(
        self, primitive: dict[str, Any], target_version: str,
    ) -> None:
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        if target < (1, 5):
            primitive.pop('socket', None)
        if target < (1, 4):
            primitive.pop('pcpuset', None)
        if target < (1, 3):
            primitive.pop('network_metadata', None)
        # Nova leaves these in (a peer that old ignores unknown fields);
        # dropped here so that a primitive holds what its version defines.
        if target < (1, 1):
            primitive.pop('pinned_cpus', None)
            primitive.pop('siblings', None)

    @property
    def free_pcpus(self) -> set[int]:
        """Dedicated host CPUs not pinned yet."""
        return self.pcpuset - self.pinned_cpus

    @property
    def avail_memory(self) -> int:
        return self.memory - self.memory_usage

    @property
    def has_threads(self) -> bool:
        """Whether the cell has SMT siblings."""
        return any(len(sibling_set) > 1 for sibling_set in self.siblings)


@base.EmulatorThreadsObjectRegistry.register
class NUMATopology(base.ComparableObject, base.EmulatorThreadsObject):
    """A host's NUMA cells."""

    # Version 1.0: Initial version
    # Version 1.1: Update NUMACell to 1.1
    # Version 1.2: Update NUMACell to 1.2
    VERSION = '1.2'

    fields = {
        #: The host's cells.
        'cells': fields.ListOfObjectsField('NUMACell'),
    }

    # Nova stopped bumping NUMATopology for NUMACell 1.3 to 1.5 (it relies
    # on version manifests); 1.2 carries any NUMACell since.
    obj_relationships = {
        'cells': [('1.0', '1.0'), ('1.1', '1.1'), ('1.2', '1.5')],
    }

    def __len__(self) -> int:
        """Defined so that boolean testing works the same as for lists."""
        return len(self.cells)

    @property
    def has_threads(self) -> bool:
        return any(cell.has_threads for cell in self.cells)


def _refuse(target: str, reason: str) -> ovo_exception.ObjectActionError:
    """The error of a downgrade that would change what an object means."""
    return ovo_exception.ObjectActionError(
        action='obj_make_compatible', reason=f'{target} {reason}')


@base.EmulatorThreadsObjectRegistry.register
class InstanceNUMACell(base.EphemeralObject, base.ComparableObject,
                       base.EmulatorThreadsObject):
    """One guest NUMA cell: the request and, once fitted, the placement."""

    # Version 1.0: Initial version
    # Version 1.1: Add pagesize field
    # Version 1.2: Add cpu_pinning_raw and topology fields
    # Version 1.3: Add cpu_policy and cpu_thread_policy fields
    # Version 1.4: Add cpuset_reserved field
    # Version 1.5: Add pcpuset field
    # Version 1.6: Add 'mixed' to cpu_policy field
    VERSION = '1.6'

    # oslo's annotations do not let a nullable field default to None
    # (they type 'default' as the field's value type), hence the ignores.
    fields = {
        #: Guest cell number; once fitted, the host cell it runs on.
        'id': fields.IntegerField(),
        #: Unpinned vCPUs (``shared`` and ``mixed`` policies).
        'cpuset': fields.SetOfIntegersField(),
        #: Pinned vCPUs (``dedicated`` and ``mixed`` policies).
        'pcpuset': fields.SetOfIntegersField(),
        #: Host pCPUs reserved for the guest's emulator threads
        #: (``emulator_threads_policy='isolate'``); only the cell fitted
        #: for guest cell 0 carries them.
        'cpuset_reserved': fields.SetOfIntegersField(
            nullable=True, default=None),  # type: ignore[arg-type]
        #: Memory in MiB.
        'memory': fields.IntegerField(),
        #: Page size in KiB, or -1 (small), -2 (large), -3 (any).
        'pagesize': fields.IntegerField(
            nullable=True, default=None),  # type: ignore[arg-type]
        #: Unused since Nova stopped setting it; kept for old topologies.
        'cpu_topology': fields.ObjectField('VirtCPUTopology',
                                           nullable=True),
        #: vCPU -> host pCPU, with string keys; use ``cpu_pinning``.
        'cpu_pinning_raw': fields.DictOfIntegersField(
            nullable=True, default=None),  # type: ignore[arg-type]
        #: ``hw:cpu_policy``.
        'cpu_policy': fields.CPUAllocationPolicyField(
            nullable=True, default=None),  # type: ignore[arg-type]
        #: ``hw:cpu_thread_policy``.
        'cpu_thread_policy': fields.CPUThreadAllocationPolicyField(
            nullable=True, default=None),  # type: ignore[arg-type]
    }

    obj_relationships = {
        'cpu_topology': [('1.2', '1.0')],
    }

    def obj_make_compatible(
        self, primitive: dict[str, Any], target_version: str,
    ) -> None:
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        # A 'mixed' cell has no meaning before 1.6.
        if target < (1, 6):
            base.raise_on_too_new_values(
                target, primitive,
                'cpu_policy', (fields.CPUAllocationPolicy.MIXED,))
        # Since 1.5 'cpuset' holds the unpinned vCPUs only, the pinned ones
        # are in 'pcpuset': a 'dedicated' cell moves them back.
        if target < (1, 5):
            if (primitive.get('cpu_policy') ==
                    fields.CPUAllocationPolicy.DEDICATED and
                    'pcpuset' in primitive):
                primitive['cpuset'] = primitive['pcpuset']
            primitive.pop('pcpuset', None)
        if target < (1, 4):
            # Unlike Nova, refuse instead of dropping the reservation: the
            # receiver would float the emulator threads over the vCPUs'
            # pCPUs while the extra pCPU stays claimed.
            if primitive.get('cpuset_reserved'):
                raise _refuse(
                    f'InstanceNUMACell {target_version}',
                    'cannot carry cpuset_reserved='
                    f'{cpuset.format_cpu_spec(primitive["cpuset_reserved"])}'
                    ' (the emulator threads\' pCPUs, added in 1.4): the '
                    "receiver would run the emulator threads on the guest's "
                    'vCPU pCPUs')
            primitive.pop('cpuset_reserved', None)
        if target < (1, 3):
            primitive.pop('cpu_policy', None)
            primitive.pop('cpu_thread_policy', None)
        # Nova leaves these in (a peer that old ignores unknown fields);
        # dropped here so that a primitive holds what its version defines.
        if target < (1, 2):
            primitive.pop('cpu_pinning_raw', None)
        if target < (1, 1):
            primitive.pop('pagesize', None)

    @property
    def cpu_pinning(self) -> dict[int, int] | None:
        """vCPU -> host pCPU (``cpu_pinning_raw`` with int keys)."""
        raw = self.cpu_pinning_raw
        if raw is None:
            return None
        return {int(vcpu): pcpu for vcpu, pcpu in raw.items()}

    @cpu_pinning.setter
    def cpu_pinning(self, pins: Mapping[int, int] | None) -> None:
        self.cpu_pinning_raw = (
            None if pins is None
            else {str(vcpu): pcpu for vcpu, pcpu in pins.items()})

    @property
    def total_cpus(self) -> set[int]:
        """All the cell's vCPUs, pinned or not."""
        return self.cpuset | self.pcpuset


@base.EmulatorThreadsObjectRegistry.register
class InstanceNUMATopology(base.ComparableObject, base.EmulatorThreadsObject):
    """A guest's NUMA cells and where its emulator threads run."""

    # Version 1.0: Initial version
    # Version 1.1: Takes into account pagesize
    # Version 1.2: InstanceNUMACell 1.2
    # Version 1.3: Add emulator threads policy
    VERSION = '1.3'

    fields = {
        #: Unused (Nova keeps it for its database row).
        'id': fields.IntegerField(),
        #: The instance the topology belongs to.
        'instance_uuid': fields.UUIDField(),
        #: The guest's cells, in guest cell order.
        'cells': fields.ListOfObjectsField('InstanceNUMACell'),
        #: ``hw:cpu_emulator_threads`` (alias ``hw:emulator_threads_policy``):
        #: ``share`` or ``isolate``; None for a guest without pinned vCPUs.
        'emulator_threads_policy': (
            fields.CPUEmulatorThreadsPolicyField(nullable=True)),
    }

    # Version 1.3 came with InstanceNUMACell 1.4 (cpuset_reserved); Nova
    # relies on version manifests for the cell versions after that.
    obj_relationships = {
        'cells': [('1.0', '1.0'), ('1.1', '1.1'), ('1.2', '1.2'),
                  ('1.3', '1.6')],
    }

    def obj_make_compatible(
        self, primitive: dict[str, Any], target_version: str,
    ) -> None:
        target = versionutils.convert_version_to_tuple(target_version)
        # Checked before the cells are backported so that the error names
        # the policy, the cause, rather than the cell's cpuset_reserved.
        if target < (1, 3) and (primitive.get('emulator_threads_policy') ==
                                fields.CPUEmulatorThreadsPolicy.ISOLATE):
            raise _refuse(
                f'InstanceNUMATopology {target_version}',
                "cannot carry emulator_threads_policy='isolate' (added in "
                '1.3): the receiver would run the emulator threads on the '
                "guest's vCPU pCPUs")
        super().obj_make_compatible(primitive, target_version)
        if target < (1, 3):
            # 'share' (or None) is what a peer before 1.3 does anyway.
            primitive.pop('emulator_threads_policy', None)

    def __len__(self) -> int:
        """Defined so that boolean testing works the same as for lists."""
        return len(self.cells)

    @property
    def cpu_pinning(self) -> set[int]:
        """The host pCPUs the guest's vCPUs are pinned to."""
        return {pcpu for cell in self.cells if cell.cpu_pinning
                for pcpu in cell.cpu_pinning.values()}

    @property
    def cpuset_reserved(self) -> set[int]:
        """The host pCPUs reserved for the guest's emulator threads."""
        return {pcpu for cell in self.cells if cell.cpuset_reserved
                for pcpu in cell.cpuset_reserved}

    @property
    def emulator_threads_isolated(self) -> bool:
        """Whether the emulator threads get their own pCPU."""
        return (self.obj_attr_is_set('emulator_threads_policy') and
                self.emulator_threads_policy ==
                fields.CPUEmulatorThreadsPolicy.ISOLATE)
