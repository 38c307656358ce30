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

"""``EmulatorThreadsFilter``: a fast, sound pre-filter for NUMA fitting.

Enable it before Nova's ``NUMATopologyFilter``::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = <this module>.EmulatorThreadsFilter
    enabled_filters = ...,EmulatorThreadsFilter,NUMATopologyFilter

(``<this module>`` is ``nova_emulator_threads.scheduler.filters``.)

It asks our engine (``virt.hardware.fit_instance_to_host``, which makes
Nova's decisions on plain data) whether the requested guest NUMA topology,
vCPUs plus the emulator threads' reserved pCPU, fits the host's free
pCPUs and memory, and rejects the hosts where it does not, logging why.

It is sound: it never rejects a host ``NUMATopologyFilter`` would accept.
Where Nova's decision depends on something the engine does not model
(PCI devices and their NUMA affinity, physnet affinity, allocation
candidates) or the host data cannot be read, it passes the host and
leaves the decision to ``NUMATopologyFilter``.

Importing this module applies the seams of ``nova_patch`` in
nova-scheduler, which is what makes the scheduler's placement request
count the emulator threads' pCPU (``available_filters`` imports it even
if the filter is not enabled).
"""

import dataclasses
import logging as py_logging
import weakref
from typing import Any

from nova.scheduler import filters
from oslo_log import log as logging

from nova_emulator_threads import conf
from nova_emulator_threads import exception
from nova_emulator_threads import nova_patch
from nova_emulator_threads.scheduler import shared_pool
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import nova_objects
from nova_emulator_threads.virt import topology

LOG = logging.getLogger(__name__)
CONF = conf.CONF


# nova-scheduler keeps its host states from one request to the next and
# replaces a host's NUMATopology (never changes it in place) when the host
# changes: a compute node update or a claim by the scheduler. So each
# topology is converted to the engine's once, and the engine's memo of
# what it derives from a host lives as long. Keyed on the host state; the
# entry is valid while it is for the very same NUMATopology object.
_HOSTS: 'weakref.WeakKeyDictionary[Any, tuple[weakref.ref[Any], ' \
    'topology.HostTopology]]' = weakref.WeakKeyDictionary()
# The request's topology, converted once per request (Nova's own filter
# works on a copy and leaves it as it is).
_REQUEST: list[tuple['weakref.ref[Any]', topology.InstanceTopology]] = []


# Hosts of one hardware and configuration have equal CPU and sibling sets:
# the cached topologies share one copy of each (a topology per host would
# otherwise hold most of its memory in them). Which fits, which does not,
# does not depend on which equal copy a topology holds.
_SHARED_SETS: dict[frozenset[int], frozenset[int]] = {}
_SHARED_SETS_MAX = 65536


def _shared(cpus: Any) -> Any:
    if not isinstance(cpus, frozenset):
        return cpus
    if len(_SHARED_SETS) >= _SHARED_SETS_MAX:
        _SHARED_SETS.clear()
    return _SHARED_SETS.setdefault(cpus, cpus)


def _host_topology(host_state: Any) -> topology.HostTopology:
    numa = host_state.numa_topology
    cached = _HOSTS.get(host_state)
    if cached is not None and cached[0]() is numa:
        return cached[1]
    host = nova_objects.host_from_object(numa)
    host = dataclasses.replace(host, cells=tuple(
        dataclasses.replace(
            cell, cpuset=_shared(cell.cpuset), pcpuset=_shared(cell.pcpuset),
            siblings=tuple(_shared(sib) for sib in cell.siblings))
        for cell in host.cells))
    _HOSTS[host_state] = (weakref.ref(numa), host)
    return host


def _instance_topology(requested: Any) -> topology.InstanceTopology:
    cached = _REQUEST[0] if _REQUEST else None
    if cached is not None and cached[0]() is requested:
        return cached[1]
    inst = nova_objects.instance_from_object(requested)
    _REQUEST[:] = [(weakref.ref(requested), inst)]
    return inst


def _pci_may_reorder(host_state: Any, host_cells: int,
                     guest_cells: int) -> bool:
    """Whether Nova would sort the host cells by PCI devices.

    With more host cells than guest cells and PCI devices on the host,
    Nova tries the cells in another order than the engine does, and the
    order can decide a fit (its caches are keyed on cell ids it rewrites).
    """
    if host_cells <= guest_cells or host_state.pci_stats is None:
        return False
    return any(pool.get('count') for pool in host_state.pci_stats.pools)


class EmulatorThreadsFilter(filters.BaseHostFilter):
    """Reject hosts that cannot take the guest's NUMA topology.

    The emulator threads' reserved pCPU included.
    """

    # Like NUMATopologyFilter: the API refuses a rebuild that would change
    # the NUMA constraints, so the current host still fits.
    RUN_ON_REBUILD = False

    def _undecided(self, spec_obj: Any) -> str | None:
        """Why Nova's decision depends on what the engine does not model."""
        if spec_obj.pci_requests and spec_obj.pci_requests.requests:
            return 'PCI devices are requested'
        if ('network_metadata' in spec_obj and spec_obj.network_metadata and
                (spec_obj.network_metadata.physnets or
                 spec_obj.network_metadata.tunneled)):
            return 'NUMA affinity of networks is requested'
        return None

    def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
        requested = spec_obj.numa_topology
        if not requested:
            # No NUMA topology, nothing pinned: NUMATopologyFilter passes.
            return True
        if not host_state.numa_topology:
            LOG.debug('%(host)s, %(node)s fails the emulator threads '
                      'filter: the host reports no NUMA topology and the '
                      'instance needs one.',
                      {'host': host_state.host, 'node': host_state.nodename},
                      instance_uuid=spec_obj.instance_uuid)
            return False
        no_pool = shared_pool.rejection(host_state, spec_obj)
        if no_pool:
            LOG.debug('%(host)s, %(node)s fails the emulator threads '
                      'filter: %(reason)s',
                      {'host': host_state.host, 'node': host_state.nodename,
                       'reason': no_pool},
                      instance_uuid=spec_obj.instance_uuid)
            return False
        undecided = self._undecided(spec_obj)
        if undecided:
            LOG.debug('%(host)s, %(node)s passes the emulator threads '
                      'filter undecided (%(why)s); NUMATopologyFilter '
                      'decides.', {'host': host_state.host,
                                   'node': host_state.nodename,
                                   'why': undecided},
                      instance_uuid=spec_obj.instance_uuid)
            return True
        try:
            host = _host_topology(host_state)
            inst = _instance_topology(requested)
        except exception.EmulatorThreadsException as exc:
            LOG.debug('%(host)s, %(node)s passes the emulator threads '
                      'filter undecided: %(error)s',
                      {'host': host_state.host, 'node': host_state.nodename,
                       'error': exc}, instance_uuid=spec_obj.instance_uuid)
            return True
        if _pci_may_reorder(host_state, len(host), len(inst)):
            return True

        limits = hardware.Limits(
            cpu_allocation_ratio=host_state.cpu_allocation_ratio,
            ram_allocation_ratio=host_state.ram_allocation_ratio)
        pack = CONF.compute.packing_host_numa_cells_allocation_strategy
        # Nova's fitter's answer as it is, even where Nova's claim on the
        # compute host will refuse it: NUMATopologyFilter accepts those
        # hosts, and this filter must never be stricter.
        siblings = CONF.emulator_threads.emulator_pcpu_siblings
        if hardware.fit_instance_to_host(host, inst, limits, pack,
                                         claimable=False,
                                         emulator_pcpu_siblings=siblings):
            return True
        # Most hosts of a busy cloud end here: not even the arguments of a
        # message nobody reads.
        if LOG.isEnabledFor(py_logging.DEBUG):
            LOG.debug('%(host)s, %(node)s fails the emulator threads '
                      'filter: %(reason)s',
                      {'host': host_state.host, 'node': host_state.nodename,
                       'reason': self._reason(host, inst, limits, pack)},
                      instance_uuid=spec_obj.instance_uuid)
        return False

    @staticmethod
    def _reason(host: topology.HostTopology,
                inst: topology.InstanceTopology,
                limits: hardware.Limits, pack: bool) -> str:
        if (not CONF.emulator_threads.explain_rejections or
                not LOG.isEnabledFor(py_logging.DEBUG)):
            return 'the instance does not fit on this host'
        siblings = CONF.emulator_threads.emulator_pcpu_siblings
        return hardware.explain_no_fit(host, inst, limits, pack,
                                       emulator_pcpu_siblings=siblings)


# See the module docstring: this is how the seams reach nova-scheduler.
nova_patch.apply()
