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


"""Where a guest's emulator threads may go, and where they should go.

``problems`` is the check ``pin`` runs before it changes anything: a CPU
set the audit would report is refused, with the reasons. ``recommend``
chooses the set ``pin --apply-audit`` uses. Both are pure and work on a
``snapshot.HostSnapshot``.

The recommendation is a pCPU that runs no vCPU at all, so that the
emulator threads never preempt a guest's vCPU, and Nova's meaning where
the guest is Nova's:

* a Nova ``isolate`` guest gets back the pCPU its persistent definition
  holds (Nova's reserved pCPU), if it is still free;
* a Nova ``share`` guest gets ``[compute] cpu_shared_set`` when the
  operator gives it;
* any other Nova guest is left alone: Nova writes its placement again at
  every hard reboot, resize and migration, so the lasting fix is the
  flavor's ``hw:cpu_emulator_threads``, not a pin;
* a guest Nova does not manage gets every online pCPU that no guest has
  pinned a vCPU to (nor reserved for isolated emulator threads), within
  the machine cpuset, leaving out isolated CPUs; if only isolated CPUs
  are free, the lowest one alone (a set of several would pile up on it).
"""

import dataclasses
from collections.abc import Mapping

from nova_emulator_threads.host import audit
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import flavor_check
from nova_emulator_threads.objects import fields


@dataclasses.dataclass(frozen=True)
class Recommendation:
    domain: str
    #: the emulator set to pin; None when there is none to recommend.
    cpus: frozenset[int] | None
    #: why this set, or why none.
    reason: str


def _dedicated_elsewhere(report: audit.AuditReport,
                         name: str) -> dict[int, str]:
    others: dict[int, str] = {}
    for guest in report.guests:
        if guest.guest.name == name:
            continue
        for pcpu, what in audit.dedicated_pcpus(guest).items():
            others.setdefault(pcpu, '%s of %s' % (what, guest.guest.name))
    return others


def problems(report: audit.AuditReport, name: str, cpus: frozenset[int],
             allow_vcpu_overlap: bool = False) -> list[str]:
    """Why the emulator threads of ``name`` must not go to ``cpus``.

    :param report: an audit of the host (the guest must be in it)
    :param name: the guest
    :param cpus: the proposed emulator set
    :param allow_vcpu_overlap: accept pCPUs of the guest's own vCPUs (the
        usual choice for DPDK guests, whose vCPU 0 runs housekeeping, not
        a poll-mode driver: vCPU 0's pCPU)
    :returns: one sentence per problem; empty when the set is fine
    """
    host = report.snapshot
    guest = next(g for g in report.guests if g.guest.name == name)
    found = []
    if not cpus:
        return ['it names no CPU']
    offline = cpus - host.cpus.online
    if offline:
        found.append('CPUs %s are not online (online: %s)'
                     % (findings.fmt(offline), findings.fmt(host.cpus.online)))
    machine = host.machine_cpuset
    if machine is not None and not cpus <= machine.cpus:
        found.append('CPUs %s are outside the cpuset of %s (%s), which '
                     'bounds every guest'
                     % (findings.fmt(cpus - machine.cpus), machine.path,
                        findings.fmt(machine.cpus)))
    if not allow_vcpu_overlap:
        owners = audit.pinned_vcpus(guest.guest.domain.vcpu_pins)
        mine = sorted(cpus & frozenset(owners))
        if mine:
            found.append(
                "%s of the guest's own pinned vCPUs (%s) would be shared "
                'with its emulator threads; --allow-vcpu-overlap permits '
                'that' % (findings.pcpus(set(mine)), ', '.join(
                    'vCPU %s on pCPU %d' % (','.join(map(str, owners[p])), p)
                    for p in mine)))
    others = _dedicated_elsewhere(report, name)
    theirs = sorted(cpus & frozenset(others))
    if theirs:
        found.append('%s dedicated to other guests (%s)'
                     % (findings.pcpus(set(theirs)) + (
                         ' is' if len(theirs) == 1 else ' are'),
                        ', '.join('%s on pCPU %d' % (others[p], p)
                                  for p in theirs)))
    isolated = host.cpus.isolated
    if len(cpus) > 1 and cpus <= isolated:
        found.append(
            'CPUs %s are all isolated, so every emulator thread '
            'would run on pCPU %d alone; give one isolated CPU or '
            'CPUs that are not isolated' %
            (findings.fmt(cpus), min(cpus)))
    return found


def _free_pcpus(report: audit.AuditReport) -> frozenset[int]:
    host = report.snapshot
    free = host.cpus.online
    if host.machine_cpuset is not None:
        free &= host.machine_cpuset.cpus
    for guest in report.guests:
        free -= frozenset(audit.dedicated_pcpus(guest))
    return free


def recommend(report: audit.AuditReport, name: str,
              cpu_shared_set: frozenset[int] | None = None,
              shared_pool_affinity: str = fields.SharedPoolAffinity.ANY,
              cpu_nodes: Mapping[int, int] | None = None,
              ) -> Recommendation:
    """The emulator set ``pin --apply-audit`` moves a guest's threads to.

    The arguments after ``name`` are ``audit.audit``'s: the
    recommendation is where the audit expects the threads.

    :param report: an audit of the host
    :param name: the guest
    :param cpu_shared_set: the host's ``[compute] cpu_shared_set``, if
        known
    :param shared_pool_affinity: the host's ``[emulator_threads]
        shared_pool_affinity``
    :param cpu_nodes: the host's CPU -> NUMA node, needed for
        ``shared_pool_affinity = numa``
    """
    guest = next(g for g in report.guests if g.guest.name == name)
    if guest.policy is not None:
        return _for_nova_guest(report, guest, guest.policy, cpu_shared_set,
                               shared_pool_affinity, cpu_nodes)
    return _free_pcpus_for(report, name)


def _for_nova_guest(report: audit.AuditReport, guest: audit.GuestReport,
                    nova: flavor_check.NovaPolicy,
                    cpu_shared_set: frozenset[int] | None,
                    shared_pool_affinity: str,
                    cpu_nodes: Mapping[int, int] | None,
                    ) -> Recommendation:
    """Where Nova's own placement rules put the guest's emulator threads."""
    name = guest.guest.name
    if nova.request is None or not nova.pinned:
        return Recommendation(name, None, 'Nova guest whose %s; Nova '
                              'rewrites its placement, so it is left '
                              'alone' % nova.describe())
    if nova.isolate:
        return _reserved_pcpu(report, guest)
    if (nova.request.emulator_threads_policy ==
            fields.CPUEmulatorThreadsPolicy.SHARE and
            cpu_shared_set is not None):
        target = cpu_shared_set & report.snapshot.cpus.online
        where = '[compute] cpu_shared_set'
        local = flavor_check.numa_local_share_set(
            nova.request, dict(guest.guest.domain.vcpu_pins), target,
            shared_pool_affinity, cpu_nodes)
        if local is not None:
            target = local
            where = ("the [compute] cpu_shared_set CPUs of the guest's NUMA "
                     'nodes ([emulator_threads] shared_pool_affinity = numa)')
        blocked = problems(report, name, target)
        if blocked:
            return Recommendation(
                name, None, '%s %s is not usable: %s' % (
                    where, findings.fmt(target), '; '.join(blocked)))
        return Recommendation(name, target, where)
    return Recommendation(
        name, None, 'Nova guest with %s: Nova puts its emulator threads '
        'back at the next hard reboot, resize or migration; set '
        "hw:cpu_emulator_threads=isolate (or 'share' with [compute] "
        'cpu_shared_set) on its flavor' % nova.describe())


def _reserved_pcpu(report: audit.AuditReport,
                   guest: audit.GuestReport) -> Recommendation:
    """An ``isolate`` guest: the pCPU its persistent definition names."""
    name = guest.guest.name
    domain = guest.guest.domain
    reserved = (domain.config.cputune.emulatorpin
                if domain.config is not None else None)
    if reserved is None or len(reserved) != 1:
        return Recommendation(
            name, None, "Nova 'isolate' guest whose persistent "
            "definition has no single emulator pCPU; hard reboot "
            "it so that Nova writes its placement again")
    blocked = problems(report, name, reserved)
    if blocked:
        return Recommendation(
            name, None, "Nova 'isolate' guest whose reserved "
            "pCPU %s is not usable (%s); hard reboot it so that "
            "Nova writes its placement again"
            % (findings.fmt(reserved), '; '.join(blocked)))
    return Recommendation(name, reserved, "the pCPU Nova reserved "
                          "for its emulator threads")


def _free_pcpus_for(report: audit.AuditReport, name: str) -> Recommendation:
    """A guest Nova does not manage: the pCPUs no guest pinned a vCPU to,
    the isolated ones left out where others remain.
    """
    free = _free_pcpus(report)
    isolated = report.snapshot.cpus.isolated
    target = free - isolated
    if not target and free:
        target = frozenset([min(free)])
    if not target:
        return Recommendation(name, None, 'every online pCPU runs a pinned '
                              'vCPU or isolated emulator threads; free one, '
                              'or pin with --allow-vcpu-overlap')
    blocked = problems(report, name, target)
    if blocked:
        return Recommendation(name, None, '; '.join(blocked))
    return Recommendation(name, target, 'the online pCPUs no guest has '
                          'pinned a vCPU to')
