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

"""Density: how many identical guests a host takes, per emulator policy.

The engine packs guests the way a compute host fills up: fit the next
guest where Nova would put it, claim what it uses, and go on until the
next one no longer fits. The count per emulator threads policy is the
price of each policy in guests per host: isolating each guest's
emulator threads costs one pCPU per guest,
while a shared emulator pool on the host's housekeeping CPUs
(``share`` with ``[compute] cpu_shared_set``) costs nothing per guest.
"""

import dataclasses
from collections.abc import Callable, Mapping

from nova_emulator_threads import cpu_request
from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import fit_result
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import shared_pool
from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import InstanceTopology

EMULATOR_KEYS = (cpu_request.EMULATOR_THREADS_KEY,
                 cpu_request.EMULATOR_THREADS_ALIAS)


def density(
    host: HostTopology,
    inst: InstanceTopology,
    limits: hardware.Limits | None = None,
    *,
    emulator_pcpu_siblings: str = fields.EmulatorPCPUSiblings.ALLOW,
) -> int:
    """How many copies of ``inst`` fit on ``host``, one after the other.

    Each copy goes where ``fit_instance_to_host`` puts it and is claimed
    with ``numa_usage_from_instance`` before the next is fitted.

    :param limits: allocation ratios; required for a guest with no pinned
        vCPUs, which would otherwise never run out of room
    :param emulator_pcpu_siblings: ``[emulator_threads]
        emulator_pcpu_siblings``
    :raises: exception.Invalid for a guest that pins nothing and no limits
    """
    pins_something = any(cell.pcpuset for cell in inst.cells)
    if not pins_something and limits is None:
        raise exception.Invalid(
            reason='a guest without pinned vCPUs takes no pCPU, so the '
                   'density of such guests depends on allocation ratios: '
                   'give limits')
    return len(fill(host, inst, limits,
                    emulator_pcpu_siblings=emulator_pcpu_siblings))


def fill(
    host: HostTopology,
    inst: InstanceTopology,
    limits: hardware.Limits | None = None,
    *,
    emulator_pcpu_siblings: str = fields.EmulatorPCPUSiblings.ALLOW,
) -> list[InstanceTopology]:
    """The copies of ``inst`` that fit on ``host``, as ``density`` packs
    them (the caller checks ``limits`` for guests that pin nothing).
    """
    fitted_guests: list[InstanceTopology] = []
    while True:
        fitted = hardware.fit_instance_to_host(
            host, inst, limits,
            emulator_pcpu_siblings=emulator_pcpu_siblings)
        if fitted is None:
            return fitted_guests
        host = claims.numa_usage_from_instance(host, fitted)
        fitted_guests.append(fitted)


# -- the report of ``plan --density`` ----------------------------------------


@dataclasses.dataclass(frozen=True)
class Policy:
    """One way to run the emulator threads.

    What the flavor sets, and whether the host has a shared CPU set.
    """

    name: str
    #: The extra specs this policy sets on the flavor.
    extra_specs: Mapping[str, str]
    #: Whether the host runs with its ``[compute] cpu_shared_set`` (True)
    #: or without one (False).
    shared_set: bool
    #: Where the emulator threads run.
    emulator_threads: str
    #: The fewest vCPUs the policy allows.
    min_vcpus: int = 1
    #: ``[emulator_threads] emulator_pcpu_siblings`` of the host.
    emulator_pcpu_siblings: str = fields.EmulatorPCPUSiblings.ALLOW
    #: Whether the policy means nothing without a ``cpu_shared_set`` (the
    #: others run on the host as configured, with or without one).
    needs_shared_set: bool = False


POLICIES = (
    Policy('no policy', {cpu_request.CPU_POLICY_KEY: 'dedicated'}, True,
           "float over the guest's pCPUs"),
    Policy('share, no cpu_shared_set',
           {cpu_request.CPU_POLICY_KEY: 'dedicated',
            cpu_request.EMULATOR_THREADS_KEY: 'share'},
           False, "float over the guest's pCPUs"),
    Policy('share + cpu_shared_set',
           {cpu_request.CPU_POLICY_KEY: 'dedicated',
            cpu_request.EMULATOR_THREADS_KEY: 'share'},
           True, 'cpu_shared_set %(shared)s, shared by all guests',
           needs_shared_set=True),
    Policy('isolate',
           {cpu_request.CPU_POLICY_KEY: 'dedicated',
            cpu_request.EMULATOR_THREADS_KEY: 'isolate'},
           True, 'one more pCPU per guest'),
    # What keeping the emulator pCPU off the vCPUs' cores costs on SMT.
    Policy('isolate, siblings avoided',
           {cpu_request.CPU_POLICY_KEY: 'dedicated',
            cpu_request.EMULATOR_THREADS_KEY: 'isolate'},
           True, "one more pCPU per guest, not on its vCPUs' cores",
           emulator_pcpu_siblings=fields.EmulatorPCPUSiblings.AVOID),
    # NOTE: Nova's realtime rules: vCPU 0 is left out of the mask and
    # runs the emulator threads, so a guest needs a second, realtime vCPU.
    Policy('realtime, mask ^0',
           {cpu_request.CPU_POLICY_KEY: 'dedicated',
            cpu_request.CPU_REALTIME_KEY: 'yes',
            cpu_request.CPU_REALTIME_MASK_KEY: '^0'},
           True, "vCPU 0's pCPU (not realtime)", min_vcpus=2),
)


@dataclasses.dataclass(frozen=True)
class DensityRow:
    """The density of one policy."""

    policy: str
    extra_specs: dict[str, str]
    #: ``[compute] cpu_shared_set`` of the host (empty: unset).
    cpu_shared_set: frozenset[int]
    vcpus: int
    #: pCPUs each guest takes, emulator threads included; None if the
    #: guest fits nowhere or is invalid.
    pcpus_per_guest: int | None
    #: None when the policy could not be counted (see ``note``).
    guests: int | None
    emulator_threads: str
    note: str | None = None
    #: Of ``guests``, how many have their emulator pCPU on an SMT sibling
    #: of one of their own vCPUs' pCPUs; None when not counted.
    emulator_on_vcpu_sibling: int | None = None


#: Raises ``EmulatorThreadsException`` if a fitted guest could not be
#: started on the host (the libvirt driver's rules, which live above the
#: engine).
BootCheck = Callable[[HostTopology, InstanceTopology], object]


def density_report(
    host: HostTopology,
    host_without_shared_set: HostTopology,
    vcpus: int,
    memory_mb: int,
    extra_specs: Mapping[str, str] | None = None,
    boot_check: BootCheck | None = None,
    shared_pool_vcpus: int = 0,
    cpu_allocation_ratio: float = 4.0,
) -> list[DensityRow]:
    """The density of each of ``POLICIES`` for one flavor.

    With ``shared_pool_vcpus`` (``[emulator_threads] shared_pool_vcpus``)
    one more row, ``share + accounted pool``: the guests also claim that
    many ``VCPU`` of the shared pool (``cpu_shared_set`` x
    ``cpu_allocation_ratio``), and stop when it is full.

    :param host: the host as configured, ``cpu_shared_set`` included
    :param host_without_shared_set: the same host with ``[compute]
        cpu_shared_set`` unset
    :param extra_specs: flavor extra specs every policy gets, under the
        policy's own
    :param boot_check: called with the host and the first fitted guest
    :param shared_pool_vcpus: VCPU each ``share`` guest claims; 0: no
        accounted row
    :param cpu_allocation_ratio: the ratio of the shared pool's ``VCPU``
        inventory (Nova's default for a new host is 4.0)
    :raises: exception.Invalid if ``extra_specs`` sets what the policies
        set (the CPU or emulator threads policy)
    """
    base = dict(extra_specs or {})
    for key in (cpu_request.CPU_POLICY_KEY,) + EMULATOR_KEYS:
        if key in base:
            raise exception.Invalid(
                reason='--extra-spec %s=%s: the density report sets %s '
                       'itself, once per policy; leave it out'
                       % (key, base[key], key))
    rows = [_row(item, host if item.shared_set else host_without_shared_set,
                 vcpus, memory_mb, base, boot_check) for item in POLICIES]
    if shared_pool_vcpus:
        rows.append(_accounted_row(host, vcpus, memory_mb, base, boot_check,
                                   shared_pool_vcpus, cpu_allocation_ratio))
    return rows


#: ``share`` with ``[emulator_threads] shared_pool_vcpus``: the shared pool
#: counted in placement.
ACCOUNTED_POOL = Policy(
    'share + accounted pool',
    {cpu_request.CPU_POLICY_KEY: 'dedicated',
     cpu_request.EMULATOR_THREADS_KEY: 'share'},
    True, 'cpu_shared_set %(shared)s, %(claim)d VCPU per guest of a pool '
          'of %(pool)g')


def _accounted_row(host: HostTopology, vcpus: int, memory_mb: int,
                   base: Mapping[str, str], boot_check: BootCheck | None,
                   shared_pool_vcpus: int,
                   cpu_allocation_ratio: float) -> DensityRow:
    """``share`` with the pool accounted: as many guests as the pCPUs
    and the pool's ``VCPU`` both allow.
    """
    pool = shared_pool.pool_capacity(host.cpu_shared_set,
                                     cpu_allocation_ratio)
    item = dataclasses.replace(
        ACCOUNTED_POOL, emulator_threads=ACCOUNTED_POOL.emulator_threads % {
            'shared': '%(shared)s', 'claim': shared_pool_vcpus,
            'pool': pool})
    row = _row(item, host, vcpus, memory_mb, base, boot_check)
    if row.guests is None:
        return row
    room = shared_pool.guests_in_pool(host.cpu_shared_set,
                                      cpu_allocation_ratio,
                                      shared_pool_vcpus)
    if room is None or room >= row.guests:
        return row
    return dataclasses.replace(
        row, guests=room,
        note='the shared pool (%g VCPU) is full before the pCPUs are'
             % pool)


def _row(item: Policy, host: HostTopology, vcpus: int, memory_mb: int,
         base: Mapping[str, str],
         boot_check: BootCheck | None) -> DensityRow:
    specs = dict(base)
    specs.update(item.extra_specs)
    shared = host.cpu_shared_set
    row = DensityRow(item.name, specs, shared, vcpus, None, None,
                     item.emulator_threads % {
                         'shared': cpuset.format_cpu_spec(shared)})
    if item.needs_shared_set and not shared:
        return dataclasses.replace(row, note='the host has no cpu_shared_set')
    try:
        inst = guest_topology.instance_topology_from_flavor(
            vcpus, memory_mb, specs)
    except exception.Invalid as exc:
        if vcpus >= item.min_vcpus:
            return dataclasses.replace(row, note=str(exc))
        # Too few vCPUs for the policy (a realtime mask must leave a
        # realtime vCPU): say why, and count the smallest guest it allows.
        note = '%s; counted with %d vCPUs' % (str(exc).rstrip('.'),
                                              item.min_vcpus)
        row = dataclasses.replace(row, vcpus=item.min_vcpus, note=note)
        try:
            inst = guest_topology.instance_topology_from_flavor(
                item.min_vcpus, memory_mb, specs)
        except exception.Invalid as exc:
            return dataclasses.replace(row, note=str(exc))
    if inst is None:
        return dataclasses.replace(row, note='the flavor pins no vCPU')
    siblings = item.emulator_pcpu_siblings
    fitted = hardware.fit_instance_to_host(
        host, inst, emulator_pcpu_siblings=siblings)
    if fitted is None:
        return dataclasses.replace(
            row, guests=0, note=hardware.explain_no_fit(
                host, inst, emulator_pcpu_siblings=siblings))
    pcpus = len(fitted.cpu_pinning) + len(fitted.cpuset_reserved)
    row = dataclasses.replace(row, pcpus_per_guest=pcpus)
    if boot_check is not None:
        try:
            boot_check(host, fitted)
        except exception.EmulatorThreadsException as exc:
            return dataclasses.replace(row, note=str(exc))
    guests = fill(host, inst, emulator_pcpu_siblings=siblings)
    return dataclasses.replace(
        row, guests=len(guests), emulator_on_vcpu_sibling=sum(
            1 for guest in guests
            if fit_result.emulator_vcpu_siblings(host, guest)))
