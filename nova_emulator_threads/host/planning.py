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

"""What Nova 34 would do with a flavor on a host: the plan.

``plan`` answers where every vCPU and the emulator threads go, what the
instance costs in placement and the ``<cputune>`` libvirt would get, as
the JSON object the ``plan`` command prints (an interface, see the
README). ``density_report`` counts how many identical guests of a flavor
fit, per emulator threads policy. Both work on a host already read
(``virt.libvirt.capabilities``); the command line, reading the host and
the tables are ``cmd.plan``'s.
"""

import dataclasses
import typing
from collections.abc import Mapping

from nova_emulator_threads import cpu_request
from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads import overhead
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import density
from nova_emulator_threads.virt import fit_result
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import shared_pool
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import bandwidth
from nova_emulator_threads.virt.libvirt import cputune

#: One plan, as the JSON output prints it.
Plan = dict[str, typing.Any]


@dataclasses.dataclass(frozen=True)
class SharedPool:
    """The shared emulator pool options ``[emulator_threads]
    shared_pool_*`` of the planned host (defaults: Nova's behaviour).
    """

    affinity: str = fields.SharedPoolAffinity.ANY
    vcpus: int = 0
    quota: bool = False
    #: ``[DEFAULT] cpu_allocation_ratio`` (Nova's initial ratio: 4.0).
    cpu_allocation_ratio: float = 4.0


def _shared_pool_refusal(host: topology.HostTopology,
                         request: cpu_request.CPURequest,
                         pool: SharedPool) -> str | None:
    """Why the scheduler never picks this host for the request, or None:
    no shared pool for a realtime ``share`` guest, or for a guest that
    claims ``VCPU`` of it.
    """
    cpus = shared_pool.shared_pool_cpus(
        (cell.cpuset, cell.pcpuset) for cell in host.cells)
    reason = shared_pool.missing_shared_pool(
        request.emulator_threads_policy, request.realtime_cpus, cpus)
    if reason is None and not cpus and overhead.estimate_instance_overhead(
            request, pool.vcpus).get('VCPU'):
        reason = ('the instance claims VCPU of the shared pool for its '
                  'emulator threads ([emulator_threads] shared_pool_vcpus '
                  '= %d) and the host has no shared CPUs, so no VCPU '
                  'inventory' % pool.vcpus)
    return reason


def plan(
    host: topology.HostTopology,
    vcpus: int,
    memory_mb: int,
    extra_specs: Mapping[str, str],
    image_props: Mapping[str, object] | None = None,
    pool: SharedPool = SharedPool(),
    *,
    emulator_pcpu_siblings: str = fields.EmulatorPCPUSiblings.ALLOW,
) -> Plan:
    """Plan one flavor on one host; the result is the JSON contract.

    :param pool: the host's shared emulator pool options
    :param emulator_pcpu_siblings: ``[emulator_threads]
        emulator_pcpu_siblings``
    :raises: exception.Invalid for a bad flavor
    """
    request = cpu_request.parse_request(vcpus, memory_mb, extra_specs,
                                        image_props)
    result = _costs(request, pool, emulator_pcpu_siblings)
    inst = guest_topology.instance_topology_from_request(request)
    if inst is None:
        _plan_floating(result, host)
        return result
    refusal = _shared_pool_refusal(host, request, pool)
    if refusal:
        result.update(fits=False, reason=refusal)
        return result
    fitted = hardware.fit_instance_to_host(
        host, inst, emulator_pcpu_siblings=emulator_pcpu_siblings)
    if fitted is None:
        result.update(fits=False, reason=hardware.explain_no_fit(
            host, inst, emulator_pcpu_siblings=emulator_pcpu_siblings))
        return result
    _emulator_siblings(result, host, fitted)
    unpinned = fit_result.unpinned_dedicated_vcpus(fitted)
    if unpinned:
        result.update(fits=False,
                      reason=_unpinned_verdict(host, fitted, unpinned))
    result['cells'] = _cells(fitted)
    _plan_cputune(result, host, fitted, request, pool, bool(unpinned))
    return result


def _costs(request: cpu_request.CPURequest, pool: SharedPool,
           emulator_pcpu_siblings: str) -> Plan:
    """The plan before the host is looked at: a fit, what it costs."""
    return {
        'fits': True, 'reason': None,
        'emulator_threads_policy': request.emulator_threads_policy,
        'cells': [], 'emulatorpin': None,
        'overhead': overhead.estimate_instance_overhead(request, pool.vcpus),
        'placement': overhead.placement_request(request, pool.vcpus),
        'cputune_xml': None,
        'emulator_pcpu_siblings': emulator_pcpu_siblings,
        'emulator_pcpu_sibling_of': [],
        'warnings': [],
        # Nova 34 gives every guest this many I/O threads
        # (``<iothreads>``); the ``<iothreadpin>`` of ``cputune_xml``
        # refers to them, so a domain built from it needs the element too.
        'iothreads': cputune.GUEST_IOTHREADS,
    }


def _plan_floating(result: Plan, host: topology.HostTopology) -> None:
    """A guest without NUMA topology: nothing is pinned; its vCPUs and
    emulator threads float over the CPUs for unpinned guests.
    """
    floating = _unpinned_cpus(host)
    if not floating:
        result.update(fits=False, reason=(
            'the host has no CPUs for unpinned guests: '
            '[compute] cpu_dedicated_set is set and cpu_shared_set is '
            'not'))
    else:
        result['emulatorpin'] = sorted(floating)


def _cells(fitted: topology.InstanceTopology) -> list[Plan]:
    """Each guest cell's host cell, pins and emulator pCPUs."""
    return [
        {'guest_cell': index, 'host_cell': cell.id,
         'cpu_pinning': {str(vcpu): pcpu for vcpu, pcpu in
                         sorted((cell.cpu_pinning or {}).items())},
         'cpuset_reserved': sorted(cell.cpuset_reserved or ())}
        for index, cell in enumerate(fitted.cells)]


def _plan_cputune(result: Plan, host: topology.HostTopology,
                  fitted: topology.InstanceTopology,
                  request: cpu_request.CPURequest, pool: SharedPool,
                  partly_unpinned: bool) -> None:
    """The ``<cputune>`` Nova's libvirt driver gives the fitted guest."""
    cap = (bandwidth.emulator_bandwidth(
        request.emulator_threads_policy, pool.vcpus,
        pool.cpu_allocation_ratio) if pool.quota else None)
    try:
        tune = cputune.cputune_from_topology(
            fitted, frozenset(host.cpu_shared_set), host=host,
            shared_pool_affinity=pool.affinity, emulator_bandwidth=cap)
    except exception.InvalidInstanceTopology:
        if not partly_unpinned:
            raise
        # The unpinned vCPUs have no shared CPU to float on: the verdict
        # already says that the boot fails.
        return
    result['emulatorpin'] = sorted(tune.emulatorpin or ())
    result['cputune_xml'] = cputune.to_string(
        cputune.format_cputune(tune)).strip()


def _emulator_siblings(result: Plan, host: topology.HostTopology,
                       fitted: topology.InstanceTopology) -> None:
    """Name each vCPU whose pCPU shares a core with the emulator pCPU.

    Under ``emulator_pcpu_siblings = allow`` (Nova's choice) that is a
    warning: the two hyperthreads share the core's execution units and
    caches.
    """
    found = [{'emulator_pcpu': pcpu, 'vcpu': vcpu, 'vcpu_pcpu': vcpu_pcpu}
             for pcpu, vcpu, vcpu_pcpu in fit_result.emulator_vcpu_siblings(
                 host, fitted)]
    result['emulator_pcpu_sibling_of'] = found
    result['warnings'] = [
        "the emulator threads' pCPU %d is an SMT sibling of pCPU %d, "
        'where vCPU %d runs: they share the core; [emulator_threads] '
        'emulator_pcpu_siblings = avoid keeps them off the vCPUs\' cores'
        % (item['emulator_pcpu'], item['vcpu_pcpu'], item['vcpu'])
        for item in found]


def _unpinned_verdict(host: topology.HostTopology,
                      fitted: topology.InstanceTopology,
                      unpinned: Mapping[int, frozenset[int]]) -> str:
    """What Nova 34 does with a topology its fitter left partly unpinned."""
    cells = {cell.id: cell for cell in host.cells}
    parts = []
    homeless = []
    for index, vcpus in sorted(unpinned.items()):
        host_cell = cells[fitted.cells[index].id]
        shared = frozenset(host_cell.cpuset)
        parts.append('dedicated vCPUs %s of guest cell %d go to host cell %d '
                     'without pCPUs and %s' % (
                         cpuset.format_cpu_spec(vcpus), index, host_cell.id,
                         'float over its shared CPUs %s'
                         % cpuset.format_cpu_spec(shared) if shared else
                         'have no shared CPU there to float on'))
        if not shared:
            homeless.append(host_cell.id)
    outcome = (
        'the compute host then cannot build the guest (an empty vCPU pin '
        'set) and the boot fails' if homeless else
        'Nova 34 boots the guest that way, placement still charges those '
        'vCPUs as PCPU, and the host does not mark any pCPU as theirs')
    return ('Nova 34 places this flavor but not as asked: %s; %s. This is a '
            'Nova bug: numa_fit_instance_to_host keys its fit cache on '
            'guest cell ids it rewrites while it walks the host cells, so a '
            'guest cell reuses a fit another cell made (the flavor fits '
            'with its guest cells in another order, or on a host with more '
            'room per cell)' % ('; '.join(parts), outcome))


def _unpinned_cpus(host: topology.HostTopology) -> frozenset[int]:
    cpus: frozenset[int] = frozenset()
    for cell in host.cells:
        cpus |= frozenset(cell.cpuset)
    return cpus


# -- the command -------------------------------------------------------------


def density_report(
    host: topology.HostTopology,
    host_without_shared_set: topology.HostTopology,
    vcpus: int,
    memory_mb: int,
    extra_specs: Mapping[str, str] | None = None,
    shared_pool_vcpus: int = 0,
    cpu_allocation_ratio: float = 4.0,
) -> list[density.DensityRow]:
    """``density.density_report``, leaving out what libvirt cannot start.

    :raises: exception.Invalid for extra specs the report sets itself
    """
    return density.density_report(host, host_without_shared_set, vcpus,
                                  memory_mb, extra_specs,
                                  boot_check=_check_cputune,
                                  shared_pool_vcpus=shared_pool_vcpus,
                                  cpu_allocation_ratio=cpu_allocation_ratio)


def _check_cputune(host: topology.HostTopology,
                   fitted: topology.InstanceTopology) -> None:
    # The libvirt driver refuses some guests the fitter places (realtime
    # vCPUs with emulator threads on their pCPUs).
    cputune.cputune_from_topology(fitted, frozenset(host.cpu_shared_set),
                                  host=host)


def density_json(row: density.DensityRow) -> Plan:
    """One policy's density, as ``--density --format json`` prints it."""
    return {'policy': row.policy, 'extra_specs': row.extra_specs,
            'cpu_shared_set': sorted(row.cpu_shared_set),
            'vcpus': row.vcpus, 'pcpus_per_guest': row.pcpus_per_guest,
            'guests': row.guests, 'emulator_threads': row.emulator_threads,
            'note': row.note,
            'emulator_on_vcpu_sibling': row.emulator_on_vcpu_sibling}
