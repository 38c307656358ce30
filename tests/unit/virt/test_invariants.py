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

"""Invariants of the engine under random load (property-based).

A generated host (1 to 16 cells, SMT 1, 2 or 4, dedicated and shared
sets, some pCPUs already pinned) takes a generated stream of requests:
boot, delete, and resize between flavors and policies in the three ways a
cloud does it (delete and boot again; fit the new flavor on the host
without the old one, then swap; or claim the new flavor next to the old
one, as a same-host resize does, then confirm or revert). After every
step the state is checked against what the live guests say they hold,
computed here from the guests' fitted topologies and not from the
engine's own bookkeeping:

``no_double_booking``
    No pCPU is pinned to two vCPUs, or to a vCPU and an emulator thread,
    of the same or of different guests, nor is it one the host had
    already pinned.
``emulator_reservation``
    ``cpuset_reserved`` is exactly one pCPU for ``isolate`` and nothing
    otherwise, only on the cell of guest cell 0, in the dedicated set of
    that host cell, and never a vCPU's pCPU.
``host_pinned_is_union``
    Each host cell's pinned set is what it started with plus the pins and
    reservations of the live guests (whole cores under
    ``cpu_thread_policy=isolate``), and its memory and shared-CPU usage
    are the live guests' sums: a delete gives everything back, and after
    the last delete the host is exactly the host it started as.
``thread_isolate``
    Under ``cpu_thread_policy=isolate`` no other guest, and no pCPU pinned
    before, is on a thread sibling of a core the guest uses.
``placement_request``
    Every request asks placement for its vCPUs plus
    ``estimate_instance_overhead``, and a fitted guest holds exactly as
    many distinct pCPUs as it asked placement for ``PCPU``.
``emulator_off_vcpu_cores``
    With ``[emulator_threads] emulator_pcpu_siblings = avoid`` (the
    streams of ``test_request_streams_avoiding_siblings``, which check
    every invariant above too): no emulator pCPU is on a core (a host
    sibling set) that runs one of the same guest's vCPUs.

The counts ``doc/source/reliability.rst`` quotes come from ``STATS``.
"""

import collections
import dataclasses
import warnings
from typing import Any

import hypothesis
import os_resource_classes as orc
import testtools
from hypothesis import strategies as st

from nova_emulator_threads import cpu_request
from nova_emulator_threads import exception
from nova_emulator_threads import overhead
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit.virt import cases
from tests.unit.virt import nova_reference as ref
from tests.unit.virt import strategies

with warnings.catch_warnings():
    # Nova pulls in eventlet, which warns that it is deprecated.
    warnings.simplefilter('ignore')
    from nova import exception as nova_exception
    from nova.virt import hardware as nova_hardware

ISOLATE = fields.CPUEmulatorThreadsPolicy.ISOLATE
THREAD_ISOLATE = fields.CPUThreadAllocationPolicy.ISOLATE
PINNED = (fields.CPUAllocationPolicy.DEDICATED,
          fields.CPUAllocationPolicy.MIXED)

#: What the properties exercised, over every example of this process.
STATS: collections.Counter[str] = collections.Counter()

Flavor = strategies.Flavor
GeneratedHost = strategies.GeneratedHost


# -- request streams ---------------------------------------------------------

_index = st.integers(0, 15)
_flavors = strategies.flavors()
operations = st.lists(st.one_of(
    st.tuples(st.just('boot'), _flavors),
    st.tuples(st.just('boot'), _flavors),
    st.tuples(st.just('delete'), _index),
    st.tuples(st.just('resize'), _index, _flavors,
              st.sampled_from(('swap', 'in_place', 'move'))),
    st.tuples(st.just('finish'), _index, st.booleans()),
    st.tuples(st.just('finish'), _index, st.booleans()),
), min_size=1, max_size=12)


@dataclasses.dataclass
class Guest:
    name: str
    flavor: Flavor
    request: cpu_request.CPURequest
    #: None for a guest without a NUMA topology: it floats, claims nothing.
    fitted: topology.InstanceTopology | None
    #: A same-host resize in progress: the new flavor's claim, held next
    #: to the old one until it is confirmed or reverted.
    pending: 'Guest | None' = None


class Cloud:
    """One compute host running the engine's fit and claim, as Nova's
    resource tracker does, plus the record of who holds what.
    """

    def __init__(self, test: testtools.TestCase,
                 generated: GeneratedHost,
                 emulator_pcpu_siblings: str = 'allow') -> None:
        self.test = test
        self.siblings = emulator_pcpu_siblings
        self.initial = generated.host
        self.host = generated.host
        self.limits = generated.limits
        self.guests: list[Guest] = []
        self.serial = 0
        self.log: list[str] = [repr(generated)]

    # -- requests ----------------------------------------------------------

    def request(self, flavor: Flavor) -> Guest:
        self.serial += 1
        request = flavor.request()
        check_placement_request(self.test, request)
        return Guest('g%d' % self.serial, flavor, request, None)

    def fit(self, host: topology.HostTopology,
            guest: Guest) -> topology.InstanceTopology | None | bool:
        """The fitted topology; True for a guest without one (it floats);
        False for no fit.
        """
        inst = guest_topology.instance_topology_from_request(guest.request)
        if inst is None:
            STATS['floating guests'] += 1
            return True
        fitted = hardware.fit_instance_to_host(
            host, inst, self.limits, emulator_pcpu_siblings=self.siblings)
        if fitted is None:
            STATS['no fit'] += 1
            reason = hardware.explain_no_fit(
                host, inst, self.limits,
                emulator_pcpu_siblings=self.siblings)
            self.test.assertNotEqual('it fits', reason)
            self.test.assertTrue(reason)
            return False
        STATS['fit'] += 1
        return fitted

    def claim(self, host: topology.HostTopology,
              fitted: topology.InstanceTopology | None,
              ) -> topology.HostTopology:
        if fitted is None:
            return host
        try:
            return claims.numa_usage_from_instance(host, fitted)
        except exception.CPUPinningConflict as exc:
            raise AssertionError(
                'the fitter chose pCPUs the claim refuses (%s)\n%s\n'
                'fitted=%r' % (exc, '\n'.join(self.log), fitted)) from None

    def free(self, host: topology.HostTopology,
             fitted: topology.InstanceTopology | None,
             ) -> topology.HostTopology:
        if fitted is None:
            return host
        return claims.numa_usage_from_instance(host, fitted, free=True)

    def pick(self, index: int) -> Guest | None:
        return self.guests[index % len(self.guests)] if self.guests else None

    # -- operations --------------------------------------------------------

    def boot(self, flavor: Flavor) -> None:
        self._boot(self.request(flavor))

    def _boot(self, guest: Guest) -> None:
        fitted = self.fit(self.host, guest)
        if fitted is False:
            return
        guest.fitted = None if fitted is True else fitted
        self.host = self.claim(self.host, guest.fitted)
        self.guests.append(guest)

    def delete(self, index: int) -> None:
        guest = self.pick(index)
        if guest is not None:
            self._delete(guest)

    def _delete(self, guest: Guest) -> None:
        if guest.pending is not None:
            self.host = self.free(self.host, guest.pending.fitted)
        self.host = self.free(self.host, guest.fitted)
        self.guests.remove(guest)
        STATS['deletes'] += 1

    def resize(self, index: int, flavor: Flavor, mode: str) -> None:
        settled = [guest for guest in self.guests if guest.pending is None]
        if not settled:
            return
        old = settled[index % len(settled)]
        new = self.request(flavor)
        STATS['resize ' + mode] += 1
        if mode == 'swap':
            # Delete the old guest, then boot the new flavor.
            self._delete(old)
            self._boot(new)
            return
        if mode == 'in_place':
            # Fit the new flavor on the host as it would be without the
            # old guest; only if it fits, give the old claim back and take
            # the new one.
            without_old = self.free(self.host, old.fitted)
            fitted = self.fit(without_old, new)
            if fitted is False:
                return
            new.fitted = None if fitted is True else fitted
            self.host = self.claim(without_old, new.fitted)
            self.guests[self.guests.index(old)] = new
            return
        # 'move': a same-host resize claims the new flavor while the old
        # one still holds its pCPUs.
        fitted = self.fit(self.host, new)
        if fitted is False:
            return
        new.fitted = None if fitted is True else fitted
        self.host = self.claim(self.host, new.fitted)
        old.pending = new
        STATS['resize claims held'] += 1

    def finish(self, index: int, confirm: bool) -> None:
        resizing = [guest for guest in self.guests if guest.pending]
        if not resizing:
            return
        guest = resizing[index % len(resizing)]
        new = guest.pending
        guest.pending = None
        if confirm:
            self.host = self.free(self.host, guest.fitted)
            self.guests[self.guests.index(guest)] = new
            STATS['resize confirmed'] += 1
        else:
            self.host = self.free(self.host, new.fitted)
            STATS['resize reverted'] += 1

    def run(self, operation: tuple[Any, ...]) -> None:
        self.log.append(repr(operation))
        getattr(self, operation[0])(*operation[1:])

    # -- the record --------------------------------------------------------

    def claims(self) -> list[tuple[str, topology.InstanceTopology]]:
        """(owner, fitted topology) of every live NUMA claim."""
        held = []
        for guest in self.guests:
            for claim in (guest, guest.pending):
                if claim is not None and claim.fitted is not None:
                    held.append((claim.name, claim.fitted))
        return held


def check_placement_request(test: testtools.TestCase,
                            request: cpu_request.CPURequest) -> None:
    """``placement_request``: vCPUs plus the overhead, split as pinned."""
    extra = overhead.estimate_instance_overhead(request)
    isolate = request.emulator_threads_policy == ISOLATE
    test.assertEqual({orc.PCPU: cpu_request.EMULATOR_THREADS_ISOLATE_PCPUS}
                     if isolate else {}, extra)
    asked = overhead.placement_request(request)
    test.assertEqual(request.vcpus + sum(extra.values()),
                     asked.get(orc.VCPU, 0) + asked.get(orc.PCPU, 0))
    pinned = len(request.dedicated_cpus)
    test.assertEqual(pinned + extra.get(orc.PCPU, 0),
                     asked.get(orc.PCPU, 0))
    test.assertEqual(request.vcpus - pinned, asked.get(orc.VCPU, 0))
    STATS['placement requests'] += 1


def _cell_by_id(host: topology.HostTopology) -> dict[int, topology.HostCell]:
    return {cell.id: cell for cell in host.cells}


def _uses(cell: topology.InstanceCell) -> set[int]:
    return set((cell.cpu_pinning or {}).values()) | set(
        cell.cpuset_reserved or ())


def _cores(host_cell: topology.HostCell, cpus: set[int]) -> set[int]:
    """The whole cores (sibling sets) that ``cpus`` touch."""
    return set().union(*(sib for sib in host_cell.siblings if sib & cpus))


class Invariants:
    """The checks run after every step; each counts its real work."""

    def __init__(self, test: testtools.TestCase, cloud: Cloud) -> None:
        self.test = test
        self.cloud = cloud

    def fail(self, what: str) -> None:
        raise AssertionError('%s\n  after: %s\n  claims: %r\n  host: %r' % (
            what, '\n    '.join(self.cloud.log), self.cloud.claims(),
            self.cloud.host))

    def check_all(self) -> None:
        self.no_double_booking()
        self.emulator_reservation()
        self.host_pinned_is_union()
        self.thread_isolate()
        self.placement_matches_claim()
        if self.cloud.siblings == 'avoid':
            self.emulator_off_vcpu_cores()
        STATS['steps checked'] += 1

    def no_double_booking(self) -> None:
        owner: dict[int, str] = {}
        for cell in self.cloud.initial.cells:
            for pcpu in cell.pinned_cpus:
                owner[pcpu] = 'pinned before'
        for name, fitted in self.cloud.claims():
            for cell in fitted.cells:
                roles = [(pcpu, '%s vCPU %d' % (name, vcpu)) for vcpu, pcpu
                         in sorted((cell.cpu_pinning or {}).items())]
                roles += [(pcpu, '%s emulator' % name)
                          for pcpu in sorted(cell.cpuset_reserved or ())]
                for pcpu, role in roles:
                    if pcpu in owner:
                        self.fail('pCPU %d is given to %s and to %s'
                                  % (pcpu, owner[pcpu], role))
                    owner[pcpu] = role
        if len(owner) > sum(len(c.pinned_cpus) for c in
                            self.cloud.initial.cells):
            STATS['no_double_booking: pCPUs checked'] += len(owner)

    def emulator_reservation(self) -> None:
        cells = _cell_by_id(self.cloud.host)
        vcpu_pcpus = {pcpu for _name, fitted in self.cloud.claims()
                      for pcpu in fitted.cpu_pinning.values()}
        for name, fitted in self.cloud.claims():
            first, *others = fitted.cells
            if any(cell.cpuset_reserved for cell in others):
                self.fail('%s has cpuset_reserved beyond guest cell 0'
                          % name)
            reserved = set(first.cpuset_reserved or ())
            if not fitted.emulator_threads_isolated:
                if reserved:
                    self.fail('%s reserves %s without isolate'
                              % (name, reserved))
                continue
            if len(reserved) != cpu_request.EMULATOR_THREADS_ISOLATE_PCPUS:
                self.fail('%s reserves %s under isolate' % (name, reserved))
            if not reserved <= set(cells[first.id].pcpuset):
                self.fail('%s reserves %s outside the dedicated set %s of '
                          'host cell %d (guest cell 0)'
                          % (name, reserved, set(cells[first.id].pcpuset),
                             first.id))
            if reserved & vcpu_pcpus:
                self.fail('%s reserves %s, a vCPU pCPU' % (name, reserved))
            STATS['emulator_reservation: isolate claims checked'] += 1

    def emulator_off_vcpu_cores(self) -> None:
        cells = _cell_by_id(self.cloud.host)
        for name, fitted in self.cloud.claims():
            reserved = set(fitted.cells[0].cpuset_reserved or ())
            if not reserved:
                continue
            host_cell = cells[fitted.cells[0].id]
            vcpus = {pcpu: vcpu for vcpu, pcpu in fitted.cpu_pinning.items()}
            for sib in host_cell.siblings:
                if sib & reserved and sib & set(vcpus):
                    pcpu = min(sib & set(vcpus))
                    self.fail('%s has its emulator pCPU %s on the core %s '
                              'of its vCPU %d (pCPU %d)'
                              % (name, sorted(reserved), sorted(sib),
                                 vcpus[pcpu], pcpu))
            if any(len(sib) > 1 for sib in host_cell.siblings):
                STATS['emulator_off_vcpu_cores: claims on SMT checked'] += 1

    def host_pinned_is_union(self) -> None:
        cells = _cell_by_id(self.cloud.host)
        expected = {cell.id: set(cell.pinned_cpus)
                    for cell in self.cloud.initial.cells}
        memory = {cell.id: cell.memory_usage
                  for cell in self.cloud.initial.cells}
        shared = {cell.id: cell.cpu_usage
                  for cell in self.cloud.initial.cells}
        for name, fitted in self.cloud.claims():
            for cell in fitted.cells:
                host_cell = cells[cell.id]
                memory[cell.id] += cell.memory
                shared[cell.id] += len(cell.cpuset)
                if cell.cpu_policy not in PINNED:
                    continue
                uses = _uses(cell)
                if not uses <= set(host_cell.pcpuset):
                    self.fail('%s uses %s, not dedicated pCPUs of host '
                              'cell %d' % (name, uses - set(
                                  host_cell.pcpuset), cell.id))
                if cell.cpu_thread_policy == THREAD_ISOLATE:
                    uses = _cores(host_cell, uses)
                expected[cell.id] |= uses
        for cell in self.cloud.host.cells:
            if set(cell.pinned_cpus) != expected[cell.id]:
                self.fail('host cell %d has %s pinned, the guests hold %s'
                          % (cell.id, sorted(cell.pinned_cpus),
                             sorted(expected[cell.id])))
            if cell.memory_usage != memory[cell.id]:
                self.fail('host cell %d uses %d MiB, the guests %d MiB'
                          % (cell.id, cell.memory_usage, memory[cell.id]))
            if cell.cpu_usage != shared[cell.id]:
                self.fail('host cell %d runs %d unpinned vCPUs, the guests '
                          'have %d' % (cell.id, cell.cpu_usage,
                                       shared[cell.id]))
        STATS['host_pinned_is_union: cells checked'] += len(cells)

    def thread_isolate(self) -> None:
        cells = _cell_by_id(self.cloud.host)
        claims = self.cloud.claims()
        for name, fitted in claims:
            for cell in fitted.cells:
                if cell.cpu_thread_policy != THREAD_ISOLATE:
                    continue
                host_cell = cells[cell.id]
                cores = _cores(host_cell, _uses(cell))
                before = cores & set(
                    _cell_by_id(self.cloud.initial)[cell.id].pinned_cpus)
                if before:
                    self.fail('%s (thread isolate) shares a core with '
                              'pCPUs %s pinned before' % (name, before))
                for other, other_fitted in claims:
                    if other == name:
                        continue
                    clash = cores & {p for c in other_fitted.cells
                                     for p in _uses(c)}
                    if clash:
                        self.fail('%s (thread isolate) shares a core with '
                                  '%s on pCPUs %s' % (name, other, clash))
                if any(len(sib) > 1 for sib in host_cell.siblings):
                    STATS['thread_isolate: cells on SMT checked'] += 1
                STATS['thread_isolate: cells checked'] += 1

    def placement_matches_claim(self) -> None:
        for guest in self.cloud.guests:
            for claim in (guest, guest.pending):
                if claim is None or claim.fitted is None:
                    continue
                asked = overhead.placement_request(claim.request)
                held = set()
                for cell in claim.fitted.cells:
                    held |= _uses(cell)
                if len(held) != asked.get(orc.PCPU, 0):
                    self.fail('%s asked placement for %r but holds pCPUs %s'
                              % (claim.name, asked, sorted(held)))
                STATS['placement_request: claims checked'] += 1


class TestInvariants(base.TestCase):
    """The properties; examples per run: the hypothesis profile's."""

    @hypothesis.settings(suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large])
    @hypothesis.given(strategies.hosts(), operations)
    def test_request_streams(self, generated: GeneratedHost,
                             stream: list[tuple[Any, ...]]) -> None:
        STATS['examples'] += 1
        cloud = Cloud(self, generated)
        invariants = Invariants(self, cloud)
        invariants.check_all()
        for operation in stream:
            cloud.run(operation)
            invariants.check_all()
            STATS['max live guests'] = max(STATS['max live guests'],
                                           len(cloud.guests))
        # Delete everything: the host is exactly as it started.
        while cloud.guests:
            cloud.run(('delete', 0))
            invariants.check_all()
        self.assertEqual(generated.host, cloud.host, '\n'.join(cloud.log))
        STATS['hosts restored'] += 1

    @hypothesis.settings(suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large])
    @hypothesis.given(strategies.hosts(), operations)
    def test_request_streams_avoiding_siblings(
            self, generated: GeneratedHost,
            stream: list[tuple[Any, ...]]) -> None:
        # The same streams with emulator_pcpu_siblings = avoid: every
        # invariant, and the emulator pCPU off the vCPUs' cores.
        STATS['examples avoiding siblings'] += 1
        cloud = Cloud(self, generated, emulator_pcpu_siblings='avoid')
        invariants = Invariants(self, cloud)
        invariants.check_all()
        for operation in stream:
            cloud.run(operation)
            invariants.check_all()
        while cloud.guests:
            cloud.run(('delete', 0))
            invariants.check_all()
        self.assertEqual(generated.host, cloud.host, '\n'.join(cloud.log))


class TestPlacementRequest(base.TestCase):
    """``placement_request`` over the whole flavor catalogue."""

    def test_every_catalogue_flavor(self) -> None:
        # vCPUs plus the overhead, for every flavor shape and page size;
        # and the NUMA claim of the flavor on an empty host (SMT for
        # 'require', legacy mode for thread 'isolate') holds exactly the
        # pCPUs placement is asked for.
        hosts = {}
        checked = 0
        # A loop, not cases: thousands of catalogue flavors, each failure
        # message naming its flavor.
        for flavor in strategies.CATALOGUE:
            for pagesize in dict.fromkeys(strategies.PAGE_SIZES):
                specs = dict(flavor.extra_specs)
                if pagesize is not None:
                    specs['hw:mem_page_size'] = pagesize
                request = dataclasses.replace(
                    flavor, extra_specs=specs).request()
                check_placement_request(self, request)
                checked += 1
            inst = guest_topology.instance_topology_from_request(
                flavor.request())
            if inst is None:
                continue
            ncells = len(inst.cells)
            if ncells not in hosts:
                hosts[ncells] = capabilities.host_topology_from_caps(
                    cases.caps_xml(ncells, 8, 2, True, [65536] * ncells,
                                   None))
            fitted = hardware.fit_instance_to_host(hosts[ncells], inst)
            if fitted is None:
                # Only a guest node without pinned vCPUs under thread
                # 'isolate' cannot fit an empty host (as in Nova).
                self.assertEqual(THREAD_ISOLATE,
                                 inst.cells[0].cpu_thread_policy, flavor)
                self.assertTrue(any(not cell.pcpuset
                                    for cell in inst.cells), flavor)
                continue
            held = {pcpu for cell in fitted.cells for pcpu in _uses(cell)}
            self.assertEqual(overhead.placement_request(
                flavor.request()).get(orc.PCPU, 0), len(held), flavor)
            STATS['placement_request: empty-host claims checked'] += 1
        self.assertEqual(len(strategies.CATALOGUE) * 6, checked)


class TestFoundByTheProperties(base.TestCase):
    """Cases the properties found, kept as plain regression tests."""

    def test_thread_isolate_emulator_pcpu_beside_a_pinned_thread(self) -> None:
        # Legacy SMT2 host. A mixed guest pins one thread of core {14, 15};
        # a thread-isolate guest with isolated emulator threads gets its
        # vCPUs on free cores, but Nova's rule puts its emulator pCPU on
        # 15, beside the other guest's 14, and isolate claims whole cores.
        # Nova's own claim refuses Nova's answer; ours says "no fit".
        host = capabilities.host_topology_from_caps(cases.caps_xml(
            2, 4, 2, False, [1024, 2048],
            [[262144, 64, 0], [524288, 128, 1]]))
        mixed = guest_topology.instance_topology_from_flavor(4, 512, {
            'hw:numa_nodes': '2', 'hw:cpu_policy': 'mixed',
            'hw:cpu_dedicated_mask': '1,3'})
        isolate = guest_topology.instance_topology_from_flavor(3, 1024, {
            'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads':
            'isolate', 'hw:cpu_thread_policy': 'isolate'})
        fitted = hardware.fit_instance_to_host(host, mixed)
        self.assertEqual({3: 14}, fitted.cells[1].cpu_pinning)
        host = claims.numa_usage_from_instance(host, fitted)

        self.assertIsNone(hardware.fit_instance_to_host(host, isolate))
        self.assertEqual(
            "the emulator threads' pCPU 15 on host cell 1 for guest cell 0 "
            'shares a core with pinned pCPU 14, which '
            'cpu_thread_policy=isolate forbids (Nova would pick it and '
            'then fail its claim)',
            hardware.explain_no_fit(host, isolate))

        # What Nova 34 does with the same host: its fitter answers, its
        # claim refuses the answer.
        nova_host = ref.nova_host(host)
        nova = ref.nova_fit(nova_host, ref.nova_instance(isolate))
        self.assertEqual({15}, nova.cells[0].cpuset_reserved)
        self.assertRaises(nova_exception.CPUPinningInvalid,
                          nova_hardware.numa_usage_from_instance_numa,
                          nova_host, nova)
