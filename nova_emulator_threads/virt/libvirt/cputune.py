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

"""The ``<cputune>`` element Nova's libvirt driver writes for a guest.

``build_cputune`` turns a fitted ``InstanceTopology`` into the element
Nova 34's libvirt driver writes for the same topology
(``LibvirtDriver._get_guest_numa_config``, serialised by
``LibvirtConfigGuestCPUTune``): same elements, same order, same
attributes, same CPU range strings. Each placement decision is one small
function below (``vcpupin_cpusets``, ``emulatorpin_cpuset``,
``iothreadpin_cpusets``, ``vcpusched``), so other choices can be offered
later behind options while Nova's stays the default.

``virt.libvirt.cputune_reader`` reads the element back from a running
guest's domain XML into the same ``CPUTune``.

This module does not import Nova: XML is built with lxml, whose
serialisation is what Nova's config classes use too.
"""

import dataclasses
from collections.abc import Mapping

from lxml import etree

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import bandwidth

#: I/O threads Nova gives every guest (``LibvirtDriver._get_guest_iothread``);
#: they are numbered from 1.
GUEST_IOTHREADS = 1
#: The scheduler Nova asks for realtime vCPUs
#: (``designer.set_vcpu_realtime_scheduler``).
REALTIME_SCHEDULER = 'fifo'
#: Default of Nova's ``[libvirt] realtime_scheduler_priority``.
DEFAULT_REALTIME_PRIORITY = 1
#: SCHED_FIFO priorities Linux accepts (``sched_get_priority_min/max``).
MIN_REALTIME_PRIORITY = 1
MAX_REALTIME_PRIORITY = 99


# ---------------------------------------------------------------------------
# The placement, as data
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class VCPUSched:
    """One ``<vcpusched>``: a scheduler for some vCPU threads."""

    vcpus: frozenset[int]
    scheduler: str
    priority: int | None = None


@dataclasses.dataclass(frozen=True)
class CPUTune:
    """What a ``<cputune>`` element says about thread placement.

    Elements this project does not place (``<shares>``, ``<period>``,
    ``<cachetune>``, ...) are not kept.
    """

    #: vCPU -> pCPUs of its ``<vcpupin>``.
    vcpupins: dict[int, frozenset[int]] = dataclasses.field(
        default_factory=dict)
    #: pCPUs of ``<emulatorpin>``; None when there is none.
    emulatorpin: frozenset[int] | None = None
    #: I/O thread id -> pCPUs of its ``<iothreadpin>``.
    iothreadpins: dict[int, frozenset[int]] = dataclasses.field(
        default_factory=dict)
    #: the ``<vcpusched>`` elements, in document order.
    vcpusched: tuple[VCPUSched, ...] = ()
    #: ``<emulator_period>`` and ``<emulator_quota>`` (microseconds): the
    #: CFS bandwidth of the emulator threads; None when not capped.
    emulator_bandwidth: bandwidth.EmulatorBandwidth | None = None


# ---------------------------------------------------------------------------
# The placement choices
# ---------------------------------------------------------------------------


def _fmt(cpus: frozenset[int]) -> str:
    return cpuset.format_cpu_spec(cpus) or '(none)'


def _host_cells(
    host: topology.HostTopology | None,
) -> dict[int, topology.HostCell]:
    return {cell.id: cell for cell in host.cells} if host else {}


def vcpupin_cpusets(
    fitted: topology.InstanceTopology,
    host: topology.HostTopology | None = None,
) -> dict[int, frozenset[int]]:
    """Where each vCPU thread may run, as Nova's ``_get_pin_cpuset`` says.

    A pinned vCPU runs on its pCPU. Any other vCPU (the shared vCPUs of a
    ``mixed`` guest, or every vCPU of an unpinned guest with a NUMA
    topology) floats over the shared CPUs of the host cell its guest cell
    landed on: that host cell's ``cpuset``, which is ``[compute]
    cpu_shared_set`` restricted to the cell (all the cell's CPUs when
    neither ``cpu_shared_set`` nor ``cpu_dedicated_set`` is set).

    :param fitted: a fitted topology: ``cells[i].id`` is a host cell id
    :param host: the host it was fitted to; only needed when some vCPU is
        not pinned
    :raises: InvalidInstanceTopology if the topology is not fitted, or an
        unpinned vCPU has nowhere to float
    :returns: vCPU -> set of pCPUs, for every vCPU of the guest
    """
    cells = _host_cells(host)
    pins: dict[int, frozenset[int]] = {}
    for index, cell in enumerate(fitted.cells):
        cell_pins = _cell_pins(index, cell, host)
        shared = _floating_cpus(index, cell, cell_pins, cells, host)
        for vcpu in sorted(cell.total_cpus):
            if vcpu in pins:
                raise exception.InvalidInstanceTopology(
                    reason='vCPU %d is in more than one guest cell' % vcpu)
            pins[vcpu] = (frozenset([cell_pins[vcpu]]) if vcpu in cell_pins
                          else shared)
    if not pins:
        raise exception.InvalidInstanceTopology(
            reason='the guest topology has no vCPUs')
    stray_rt = fitted.realtime_cpus - frozenset(pins)
    if stray_rt:
        raise exception.InvalidInstanceTopology(
            reason='realtime vCPUs %s are not vCPUs of the guest (%s)'
                   % (_fmt(stray_rt), _fmt(frozenset(pins))))
    return pins


def _cell_pins(index: int, cell: topology.InstanceCell,
               host: topology.HostTopology | None) -> Mapping[int, int]:
    """Guest cell ``index``'s ``cpu_pinning``, checked against the cell."""
    cell_pins = cell.cpu_pinning or {}
    stray = frozenset(cell_pins) - cell.total_cpus
    if stray:
        raise exception.InvalidInstanceTopology(
            reason='cpu_pinning of guest cell %d names vCPUs %s, which '
                   'are not in the cell (%s)'
                   % (index, _fmt(stray), _fmt(cell.total_cpus)))
    unpinned_dedicated = cell.pcpuset - frozenset(cell_pins)
    # NOTE(nova): Nova's fitter can return a guest cell of a pinned
    # flavor without pins (``unpinned_dedicated_vcpus``); Nova's claim
    # then pins nothing for it and ``_get_pin_cpuset`` floats its
    # vCPUs over the host cell's shared CPUs, as below. Without the
    # host, a cell without pins can only be an unfitted topology.
    if unpinned_dedicated and host is None:
        raise exception.InvalidInstanceTopology(
            reason='dedicated vCPUs %s of guest cell %d have no pCPU in '
                   'cpu_pinning; fit the topology to a host first'
                   % (_fmt(unpinned_dedicated), index))
    return cell_pins


def _floating_cpus(index: int, cell: topology.InstanceCell,
                   cell_pins: Mapping[int, int],
                   cells: dict[int, topology.HostCell],
                   host: topology.HostTopology | None) -> frozenset[int]:
    """The shared CPUs the cell's vCPUs without a pin float over."""
    floating = cell.total_cpus - frozenset(cell_pins)
    if not floating:
        return frozenset()
    if host is None:
        raise exception.InvalidInstanceTopology(
            reason='vCPUs %s of guest cell %d are not pinned and '
                   'float over the shared CPUs of their host cell, '
                   'so the host topology is needed'
                   % (_fmt(floating), index))
    if cell.id not in cells:
        raise exception.InvalidInstanceTopology(
            reason='guest cell %d is on host cell %d, which the '
                   'host does not have (cells %s)'
                   % (index, cell.id, _fmt(frozenset(cells))))
    shared = frozenset(cells[cell.id].cpuset)
    if not shared:
        raise exception.InvalidInstanceTopology(
            reason='vCPUs %s of guest cell %d are not pinned and '
                   'would float over the shared CPUs of host cell '
                   '%d, which has none; [compute] cpu_shared_set '
                   'must include CPUs of that cell'
                   % (_fmt(floating), index, cell.id))
    return shared


def numa_local_shared_cpuset(
    fitted: topology.InstanceTopology,
    cpu_shared_set: frozenset[int],
    host: topology.HostTopology | None,
) -> frozenset[int]:
    """The shared CPUs on the host cells the guest's cells landed on.

    What ``shared_pool_affinity = numa`` pins a ``share`` guest's emulator
    threads and I/O thread to: ``cpu_shared_set`` restricted to the CPUs
    of those host cells (a host cell's ``cpuset``). Empty when none of
    them has shared CPUs; the caller then falls back to the whole set.

    :param fitted: a fitted topology: ``cells[i].id`` is a host cell id
    :param cpu_shared_set: ``[compute] cpu_shared_set`` of the host
    :param host: the host it was fitted to
    :raises: InvalidInstanceTopology if the host is missing or lacks one
        of the guest's host cells
    :returns: the NUMA-local shared CPUs, possibly none
    """
    if host is None:
        raise exception.InvalidInstanceTopology(
            reason='the emulator threads follow the guest\'s NUMA cells '
                   '(shared_pool_affinity = numa), so the host topology '
                   'is needed')
    cells = _host_cells(host)
    local: frozenset[int] = frozenset()
    for index, cell in enumerate(fitted.cells):
        if cell.id not in cells:
            raise exception.InvalidInstanceTopology(
                reason='guest cell %d is on host cell %d, which the host '
                       'does not have (cells %s)'
                       % (index, cell.id, _fmt(frozenset(cells))))
        local |= frozenset(cells[cell.id].cpuset) & cpu_shared_set
    return local


def emulatorpin_cpuset(
    fitted: topology.InstanceTopology,
    cpu_shared_set: frozenset[int] = frozenset(),
    *,
    host: topology.HostTopology | None = None,
    shared_pool_affinity: str = fields.SharedPoolAffinity.ANY,
) -> frozenset[int]:
    """Where the emulator threads run, as Nova's ``_get_emulatorpin_cpuset``.

    * ``isolate``: the pCPUs reserved for them (``cpuset_reserved``, which
      the fitter puts on the host cell of guest cell 0);
    * ``share`` with ``[compute] cpu_shared_set`` set: that whole set (not
      restricted to the guest's NUMA cells, as in Nova); with
      ``shared_pool_affinity = numa``, the part of it on the guest's host
      cells (``numa_local_shared_cpuset``), or the whole set when that
      part is empty;
    * otherwise (``share`` without a shared set, or no policy): they float
      over the CPUs of the guest's vCPUs, leaving out realtime vCPUs.

    Nova also intersects ``cpu_shared_set`` with the online CPUs; its
    resource tracking (``_get_vcpu_available``) already fails when a CPU
    of the set is offline, so on a working host the two are the same.

    :param fitted: a fitted topology
    :param cpu_shared_set: ``[compute] cpu_shared_set`` of the host
    :param host: the host it was fitted to; only needed when some vCPU is
        not pinned and the emulator threads float over the vCPUs, or with
        ``shared_pool_affinity = numa``
    :param shared_pool_affinity: ``[emulator_threads]
        shared_pool_affinity``; ``any`` is Nova's choice
    :raises: InvalidInstanceTopology if the emulator threads would have no
        CPU, or Nova refuses the combination
    :returns: the pCPUs of ``<emulatorpin>``
    """
    policy = fitted.emulator_threads_policy
    _check_realtime_share(fitted, cpu_shared_set)
    if policy == fields.CPUEmulatorThreadsPolicy.ISOLATE:
        if not fitted.cpuset_reserved:
            raise exception.InvalidInstanceTopology(
                reason="the emulator threads policy is 'isolate' but no "
                       "guest cell has cpuset_reserved; fit the topology "
                       "to a host first")
        return fitted.cpuset_reserved
    if policy == fields.CPUEmulatorThreadsPolicy.SHARE and cpu_shared_set:
        return _shared_pool_cpuset(fitted, cpu_shared_set, host,
                                   shared_pool_affinity)
    return _non_realtime_vcpu_cpuset(fitted, host)


def _check_realtime_share(fitted: topology.InstanceTopology,
                          cpu_shared_set: frozenset[int]) -> None:
    """Nova refuses to build a realtime ``share`` guest without a shared
    set (``_get_guest_memory_backing_config``): realtime vCPUs must not
    share pCPUs with emulator threads, and ``share`` without a shared set
    would put them on the vCPUs' pCPUs.
    """
    if (fitted.realtime_cpus and
            fitted.emulator_threads_policy ==
            fields.CPUEmulatorThreadsPolicy.SHARE and
            not cpu_shared_set):
        raise exception.InvalidInstanceTopology(
            reason="realtime vCPUs %s with emulator threads policy 'share' "
                   "need [compute] cpu_shared_set, which is empty on this "
                   "host; set it, or use emulator threads policy 'isolate'"
                   % _fmt(fitted.realtime_cpus))


def _shared_pool_cpuset(fitted: topology.InstanceTopology,
                        cpu_shared_set: frozenset[int],
                        host: topology.HostTopology | None,
                        shared_pool_affinity: str) -> frozenset[int]:
    """``share`` with a shared set: the set, or with ``shared_pool_affinity
    = numa`` its part on the guest's host cells when there is one.
    """
    if shared_pool_affinity == fields.SharedPoolAffinity.NUMA:
        local = numa_local_shared_cpuset(fitted, cpu_shared_set, host)
        if local:
            return local
    elif shared_pool_affinity != fields.SharedPoolAffinity.ANY:
        raise exception.Invalid(
            reason='[emulator_threads] shared_pool_affinity=%r is not '
                   'allowed; expected one of %s'
                   % (shared_pool_affinity,
                      ', '.join(fields.SharedPoolAffinity.ALL)))
    return frozenset(cpu_shared_set)


def _non_realtime_vcpu_cpuset(
    fitted: topology.InstanceTopology,
    host: topology.HostTopology | None,
) -> frozenset[int]:
    """No emulator pCPU of their own: the CPUs of the non-realtime vCPUs."""
    pins = vcpupin_cpusets(fitted, host)
    emulator: frozenset[int] = frozenset()
    for vcpu, pcpus in pins.items():
        if vcpu not in fitted.realtime_cpus:
            emulator |= pcpus
    if not emulator:
        raise exception.InvalidInstanceTopology(
            reason='every vCPU (%s) is realtime, so the emulator threads '
                   'have no pCPU; leave at least one vCPU out of '
                   'hw:cpu_realtime_mask or set an emulator threads policy'
                   % _fmt(frozenset(pins)))
    return emulator


def iothreadpin_cpusets(
    emulatorpin: frozenset[int],
) -> dict[int, frozenset[int]]:
    """Where the guest's I/O threads run: with the emulator threads.

    Nova gives every guest ``GUEST_IOTHREADS`` I/O threads and pins each
    to the emulator threads' set, so that I/O stays off realtime and
    isolated vCPUs as well.

    :param emulatorpin: the set ``emulatorpin_cpuset`` chose
    :returns: I/O thread id (from 1) -> set of pCPUs
    """
    if not emulatorpin:
        # Nova writes no <iothreadpin> without a cpuset: libvirt rejects it.
        return {}
    return {iothread: frozenset(emulatorpin)
            for iothread in range(1, GUEST_IOTHREADS + 1)}


def vcpusched(
    fitted: topology.InstanceTopology,
    realtime_priority: int = DEFAULT_REALTIME_PRIORITY,
) -> tuple[VCPUSched, ...]:
    """The realtime scheduler of the realtime vCPUs, as Nova sets it.

    :param fitted: the topology; ``realtime_cpus`` comes from
        ``hw:cpu_realtime`` and ``hw:cpu_realtime_mask``
    :param realtime_priority: Nova's ``[libvirt]
        realtime_scheduler_priority`` (there is no per-flavor priority)
    :raises: Invalid if the priority is not a SCHED_FIFO priority
    :returns: no element, or one for all realtime vCPUs
    """
    if (isinstance(realtime_priority, bool) or
            not isinstance(realtime_priority, int) or
            not (MIN_REALTIME_PRIORITY <= realtime_priority <=
                 MAX_REALTIME_PRIORITY)):
        # Nova passes any integer on and libvirt fails when the guest
        # starts; saying so before is kinder.
        raise exception.Invalid(
            reason='[libvirt] realtime_scheduler_priority=%r is not allowed; '
                   'expected an integer from %d to %d, the SCHED_FIFO '
                   'priorities of Linux' % (realtime_priority,
                                            MIN_REALTIME_PRIORITY,
                                            MAX_REALTIME_PRIORITY))
    if not fitted.realtime_cpus:
        return ()
    return (VCPUSched(vcpus=frozenset(fitted.realtime_cpus),
                      scheduler=REALTIME_SCHEDULER,
                      priority=realtime_priority),)


# ---------------------------------------------------------------------------
# Building the element
# ---------------------------------------------------------------------------


def cputune_from_topology(
    fitted: topology.InstanceTopology,
    cpu_shared_set: frozenset[int] = frozenset(),
    realtime_priority: int = DEFAULT_REALTIME_PRIORITY,
    *,
    host: topology.HostTopology | None = None,
    shared_pool_affinity: str = fields.SharedPoolAffinity.ANY,
    emulator_bandwidth: bandwidth.EmulatorBandwidth | None = None,
) -> CPUTune:
    """The placement Nova's libvirt driver chooses for a fitted guest.

    Same parameters as ``build_cputune``; the audit compares this with
    what libvirt reports for a running guest.
    """
    pins = vcpupin_cpusets(fitted, host)
    emulator = emulatorpin_cpuset(fitted, cpu_shared_set, host=host,
                                  shared_pool_affinity=shared_pool_affinity)
    return CPUTune(vcpupins=pins,
                   emulatorpin=emulator,
                   iothreadpins=iothreadpin_cpusets(emulator),
                   vcpusched=vcpusched(fitted, realtime_priority),
                   emulator_bandwidth=emulator_bandwidth)


def format_cputune(tune: CPUTune) -> etree._Element:
    """The ``<cputune>`` element for a placement, in Nova's layout.

    Children in the order of Nova's ``LibvirtConfigGuestCPUTune``:
    ``<emulatorpin>``, ``<iothreadpin>`` by I/O thread, ``<vcpupin>`` by
    vCPU, then ``<vcpusched>``; attributes in the order its classes set
    them.
    """
    root = etree.Element('cputune')
    if tune.emulator_bandwidth is not None:
        # Not a Nova element: libvirt reads <cputune>'s children in any
        # order; ours go first, as libvirt itself writes them.
        etree.SubElement(root, 'emulator_period').text = str(
            tune.emulator_bandwidth.period)
        etree.SubElement(root, 'emulator_quota').text = str(
            tune.emulator_bandwidth.quota)
    if tune.emulatorpin is not None:
        etree.SubElement(root, 'emulatorpin',
                         cpuset=_spec(tune.emulatorpin))
    for iothread, pcpus in sorted(tune.iothreadpins.items()):
        etree.SubElement(root, 'iothreadpin', cpuset=_spec(pcpus),
                         iothread=str(iothread))
    for vcpu, pcpus in sorted(tune.vcpupins.items()):
        etree.SubElement(root, 'vcpupin', vcpu=str(vcpu),
                         cpuset=_spec(pcpus))
    for sched in tune.vcpusched:
        element = etree.SubElement(root, 'vcpusched',
                                   vcpus=_spec(sched.vcpus),
                                   scheduler=sched.scheduler)
        if sched.priority is not None:
            element.set('priority', str(sched.priority))
    return root


def build_cputune(
    fitted: topology.InstanceTopology,
    cpu_shared_set: frozenset[int] = frozenset(),
    realtime_priority: int = DEFAULT_REALTIME_PRIORITY,
    *,
    host: topology.HostTopology | None = None,
) -> etree._Element:
    """Build the ``<cputune>`` Nova's libvirt driver writes for a guest.

    Only guests with a NUMA topology get one: for the others (``None``
    from the fitter) Nova writes no ``<cputune>`` and every thread floats
    over ``<vcpu cpuset>``.

    :param fitted: a fitted topology (``fit_instance_to_host``)
    :param cpu_shared_set: ``[compute] cpu_shared_set`` of the host
    :param realtime_priority: ``[libvirt] realtime_scheduler_priority``
    :param host: the host it was fitted to; needed only when some vCPU is
        not pinned (``mixed`` guests, unpinned guests with NUMA cells)
    :raises: InvalidInstanceTopology, Invalid (see the choices above)
    :returns: the ``<cputune>`` element
    """
    return format_cputune(cputune_from_topology(
        fitted, cpu_shared_set, realtime_priority, host=host))


def _spec(cpus: frozenset[int]) -> str:
    return cpuset.format_cpu_spec(cpus)


def to_string(element: etree._Element) -> str:
    """Serialise an element the way Nova's ``LibvirtConfigObject.to_xml``."""
    return etree.tostring(element, encoding='unicode', pretty_print=True)
