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

"""``EmulatorThreadsFilter``: Nova's NUMA filtering, decided by our engine.

Enable it instead of Nova's ``NUMATopologyFilter``::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = <this module>.EmulatorThreadsFilter
    enabled_filters = ...,EmulatorThreadsFilter

(``<this module>`` is ``nova_emulator_threads.scheduler.filters``.)

It gives the scheduler what ``NUMATopologyFilter`` gives it: the same
hosts pass, the same allocation candidates survive, and a passing host's
``limits['numa_topology']`` is set to the same ``NUMATopologyLimits``.
The decision is our engine's (``virt.hardware.fit_instance_to_host``,
which makes Nova's decisions on plain data, without the versioned-object
access that makes Nova's fitter slow). Where Nova's decision depends on
something the engine does not model, the host is handed to Nova's own
filter and the answer is Nova's:

* PCI devices are requested (their NUMA affinity policy, the provider
  mapping of each allocation candidate, the host's PCI stats);
* the networks ask for NUMA affinity (physnets, tunneled networks);
* the host or guest topology object cannot be read (an old peer).

(PCI devices on a host decide the order in which Nova tries its cells
even for a guest that requests none; the filter hands the engine each
cell's free devices for that.)

Without PCI requests, Nova's answer is the same for every allocation
candidate of a host (the provider mapping only matters to PCI), so they
all survive or none does.

Enabled in front of ``NUMATopologyFilter`` (the set-up of earlier
releases) it still works: ``NUMATopologyFilter`` then decides again, on
the hosts and candidates this filter left, and comes to the same answer.

Importing this module applies the seams of ``nova_patch`` in
nova-scheduler, which is what makes the scheduler's placement request
count the emulator threads' pCPU (``available_filters`` imports it even
if the filter is not enabled).
"""

import dataclasses
import logging as py_logging
from collections.abc import Iterable, Iterator
from typing import Any

from nova import objects
from nova.objects import fields as nova_fields
from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils
from nova.scheduler.filters import numa_topology_filter
from oslo_log import log as logging

from nova_emulator_threads import conf
from nova_emulator_threads import exception
from nova_emulator_threads import nova_patch
from nova_emulator_threads.scheduler import shared_pool
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import memo
from nova_emulator_threads.virt import nova_objects
from nova_emulator_threads.virt import topology

LOG = logging.getLogger(__name__)
CONF = conf.CONF


# The view of each NUMATopology object read, for as long as it lives.
#
# nova-scheduler keeps its host states from one request to the next and
# replaces a host's NUMATopology (never changes it in place) when the host
# changes: a compute node update, or a claim by the scheduler. So each
# topology object is read once, and its entry goes when the object does:
# no entry outlives its host state or a topology the host state dropped.
# What the engine derives from a view (virt.packing) is kept on the view,
# so it goes with it. virt.memo says why it is safe with threads.
_HOSTS: memo.IdentityMemo[topology.HostTopology] = memo.IdentityMemo()


def _host(numa: Any) -> topology.HostTopology:
    host = _HOSTS.get(numa)
    if host is None:
        host = nova_objects.host_view_of_object(numa)
        _HOSTS.put(numa, host)
    return host


def _has_threads(host: topology.HostTopology) -> bool:
    """Nova's ``NUMATopology.has_threads``."""
    return any(len(sib) > 1 for cell in host.cells for sib in cell.siblings)


def _delegated_because(spec_obj: Any) -> str | None:
    """Why Nova's decision depends on what the engine does not model."""
    if spec_obj.pci_requests and spec_obj.pci_requests.requests:
        return 'PCI devices are requested'
    if 'network_metadata' in spec_obj and spec_obj.network_metadata:
        network = spec_obj.network_metadata
        if (('physnets' in network and network.physnets) or
                ('tunneled' in network and network.tunneled)):
            return 'NUMA affinity of networks is requested'
    return None


def _pci_devices(pci_stats: Any, host: topology.HostTopology,
                 guest_cells: int) -> dict[Any, int] | None:
    """The free PCI devices per host cell, if they order the cells.

    With more host cells than guest cells Nova sorts the cells by their
    free PCI devices (those with fewer first, when the guest requests
    none): that changes the order only if the cells' counts differ.
    """
    if pci_stats is None or len(host.cells) <= guest_cells:
        return None
    per_cell: dict[Any, int] = {}
    for pool in pci_stats.pools:
        node = pool['numa_node']
        per_cell[node] = per_cell.get(node, 0) + pool['count']
    if len({per_cell.get(cell.id, 0) for cell in host.cells}) > 1:
        return per_cell
    return None


@dataclasses.dataclass(slots=True)
class _Request:
    """What one request asks, read once for all the hosts."""

    spec_obj: Any
    #: The guest topology requested, Nova's object and the engine's view.
    requested: Any
    inst: topology.InstanceTopology | None
    #: NUMATopologyFilter's CPU policy check: a dedicated guest with
    #: ``require`` thread policy needs a host with SMT.
    needs_threads: bool
    #: Why every host of this request goes to Nova's filter, if they do.
    delegated: str | None
    pack: bool
    #: One ``NUMATopologyLimits`` per allocation ratios (see ``limits``).
    limits: dict[tuple[float, float], tuple[hardware.Limits, Any]] = (
        dataclasses.field(default_factory=dict))

    @classmethod
    def of(cls, spec_obj: Any) -> '_Request':
        extra_specs = spec_obj.flavor.extra_specs
        image_props = spec_obj.image.properties
        needs_threads = (
            nova_fields.CPUAllocationPolicy.DEDICATED in (
                extra_specs.get('hw:cpu_policy'),
                image_props.get('hw_cpu_policy')) and
            nova_fields.CPUThreadAllocationPolicy.REQUIRE in (
                extra_specs.get('hw:cpu_thread_policy'),
                image_props.get('hw_cpu_thread_policy')))
        requested = spec_obj.numa_topology
        inst = None
        delegated = None
        if requested:
            delegated = _delegated_because(spec_obj)
            if delegated is None:
                try:
                    inst = nova_objects.instance_from_object(requested)
                except exception.EmulatorThreadsException as exc:
                    delegated = str(exc)
        return cls(spec_obj, requested, inst, needs_threads, delegated,
                   CONF.compute.packing_host_numa_cells_allocation_strategy)

    def limits_for(self, host_state: Any) -> tuple[hardware.Limits, Any]:
        """The engine's limits and Nova's ``NUMATopologyLimits``.

        Nova's filter builds an equal ``NUMATopologyLimits`` for each
        host it passes; building one costs more than the engine's whole
        decision, so the hosts of one request with the same ratios share
        one. Nothing in Nova changes it after the filter: the scheduler's
        claim reads it, and it is sent to the compute host as a copy.
        """
        key = (host_state.cpu_allocation_ratio,
               host_state.ram_allocation_ratio)
        got = self.limits.get(key)
        if got is None:
            nova_limits = objects.NUMATopologyLimits(
                cpu_allocation_ratio=key[0], ram_allocation_ratio=key[1])
            if ('network_metadata' in self.spec_obj and
                    self.spec_obj.network_metadata):
                nova_limits.network_metadata = self.spec_obj.network_metadata
            got = self.limits[key] = (hardware.Limits(*key), nova_limits)
        return got


class EmulatorThreadsFilter(filters.BaseHostFilter,
                            filters.CandidateFilterMixin):
    """Filter on the requested NUMA topology, with the emulator threads.

    Gives the answer of ``NUMATopologyFilter``; see the module docstring.
    """

    # Like NUMATopologyFilter: the API refuses a rebuild that would change
    # the NUMA constraints, so the current host still fits.
    RUN_ON_REBUILD = False

    def __init__(self) -> None:
        super().__init__()
        self._nova = numa_topology_filter.NUMATopologyFilter()

    def filter_all(self, filter_obj_list: Iterable[Any],
                   spec_obj: Any) -> Iterator[Any]:
        """Yield the hosts that pass, reading the request once."""
        if (not self.RUN_ON_REBUILD and
                scheduler_utils.request_is_rebuild(spec_obj)):
            # As BaseHostFilter._filter_one, for the whole request.
            yield from filter_obj_list
            return
        request = _Request.of(spec_obj)
        for host_state in filter_obj_list:
            if self._passes(host_state, request):
                yield host_state

    def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
        return self._passes(host_state, _Request.of(spec_obj))

    def _passes(self, host_state: Any, request: _Request) -> bool:
        numa = host_state.numa_topology
        if not numa:
            if request.requested:
                self._rejected(host_state, request, 'no host NUMA topology '
                               'while the instance specified one')
                return False
            return True
        # The one deliberate difference from NUMATopologyFilter: a host
        # where Nova's driver would refuse to build the guest at spawn.
        no_pool = (shared_pool.rejection(host_state, request.spec_obj)
                   if request.requested else None)
        if no_pool:
            self._rejected(host_state, request, no_pool,
                           'the emulator threads filter')
            # As Nova leaves a host that fails: no candidate.
            host_state.allocation_candidates = []
            return False
        if request.delegated is not None:
            return self._delegate(host_state, request, request.delegated)
        try:
            host = _host(numa)
        except exception.EmulatorThreadsException as exc:
            return self._delegate(host_state, request, str(exc))
        if request.needs_threads and not _has_threads(host):
            LOG.debug("%(host_state)s fails CPU policy requirements. Host "
                      "does not have hyperthreading or hyperthreading is "
                      "disabled, but 'require' threads policy was "
                      "requested.", {'host_state': host_state})
            return False
        inst = request.inst
        if inst is None:
            # No guest NUMA topology: nothing to fit.
            return True
        devices = _pci_devices(host_state.pci_stats, host,
                               len(inst))
        limits, nova_limits = request.limits_for(host_state)
        # Nova's fitter's answer as it is, even where Nova's claim on the
        # compute host will refuse it: so does NUMATopologyFilter.
        fits = hardware.fit_instance_to_host(
            host, inst, limits, request.pack, claimable=False,
            devices=devices,
            emulator_pcpu_siblings=CONF.emulator_threads.emulator_pcpu_siblings)
        # Nova asks for each allocation candidate, and without PCI the
        # answer is the same for all of them.
        candidates = host_state.allocation_candidates
        host_state.allocation_candidates = (
            list(candidates) if fits is not None else [])
        if fits is None or not candidates:
            # Most hosts of a busy cloud end here: not even the arguments
            # of a message nobody reads.
            if LOG.isEnabledFor(py_logging.DEBUG):
                self._rejected(host_state, request, self._reason(
                    host, inst, limits, request.pack, devices,
                    bool(candidates)))
            return False
        host_state.limits['numa_topology'] = nova_limits
        return True

    @staticmethod
    def _rejected(host_state: Any, request: _Request, reason: str,
                  what: str = 'NUMA topology requirements') -> None:
        LOG.debug('%(host)s, %(node)s fails %(what)s: %(reason)s',
                  {'host': host_state.host, 'node': host_state.nodename,
                   'what': what, 'reason': reason},
                  instance_uuid=request.spec_obj.instance_uuid)

    def _delegate(self, host_state: Any, request: _Request,
                  why: str) -> bool:
        LOG.debug('%(host)s, %(node)s: NUMATopologyFilter decides '
                  '(%(why)s).', {'host': host_state.host,
                                 'node': host_state.nodename, 'why': why},
                  instance_uuid=request.spec_obj.instance_uuid)
        passes: bool = self._nova.host_passes(host_state, request.spec_obj)
        return passes

    @staticmethod
    def _reason(host: topology.HostTopology,
                inst: topology.InstanceTopology,
                limits: hardware.Limits, pack: bool,
                devices: dict[Any, int] | None,
                has_candidates: bool) -> str:
        if not has_candidates:
            return 'no allocation candidate is left'
        if not CONF.emulator_threads.explain_rejections:
            return 'the instance does not fit on this host'
        return hardware.explain_no_fit(
            host, inst, limits, pack, devices,
            emulator_pcpu_siblings=CONF.emulator_threads.emulator_pcpu_siblings)


# See the module docstring: this is how the seams reach nova-scheduler.
nova_patch.apply()
