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


"""The audit: what is wrong with where a host's emulator threads run.

Pure: it works on a ``snapshot.HostSnapshot`` (recorded or live) and
returns findings, each with a severity, a stable code and one sentence.
These are the checks an operator makes by hand with ``ps -T``,
``taskset -apc`` and ``virsh emulatorpin`` when a pinned guest loses
packets, automated:

``emulator-on-vcpu-pcpu``
    An emulator or I/O thread may run on a pCPU that runs one of the
    guest's pinned vCPUs; the vCPU is named, as a reverse map from pCPU
    to vCPU (``virsh vcpupin`` read backwards) names it.
``emulator-on-vcpu-sibling``
    An emulator or I/O thread runs on a pCPU that is an SMT sibling of a
    pCPU running one of the guest's pinned vCPUs (Nova's ``isolate`` pCPU
    on a hyperthreaded host, typically): the two hyperthreads share the
    core, so the threads still slow the vCPU. The vCPU and both pCPUs are
    named. Needs the host's sibling map from ``/sys``.
``emulator-on-isolated-cpus``
    The emulator (or an I/O thread) pin set spans several isolated CPUs:
    the scheduler does not spread threads over isolated CPUs, so they all
    run on the lowest of them, which is named with the vCPU found there.
``vhost-on-vcpu-pcpu``
    A ``vhost-<qemu pid>`` thread may run on a pCPU of a pinned vCPU.
``emulator-on-other-guest-pcpu``
    A guest's emulator, I/O or vhost thread may run on a pCPU dedicated
    to another guest (a pinned vCPU, or a Nova ``isolate`` emulator pCPU).
``nova-policy-mismatch``
    A Nova guest's live placement is not what its flavor's policy makes
    Nova write (see ``flavor_check``), so Nova will change it back at the
    next hard reboot, resize or migration, or never made it.
``nova-policy-unchecked``
    A Nova guest whose flavor this project cannot read as a CPU request.
``live-config-differ``
    The live pins differ from the persistent definition: a restart
    changes where threads run.
``thread-outside-pin``
    A thread may run on CPUs that its libvirt pin does not allow (someone
    changed it behind libvirt, with ``taskset`` for instance).

A vCPU counts as pinned when libvirt pins it to exactly one pCPU: that
is how Nova pins dedicated vCPUs, and a vCPU allowed on several pCPUs
floats and shares them by design. When ``/proc`` shows the guest's
threads, their real affinities are audited; otherwise (no process found,
or a driver without processes) the pins libvirt reports stand in for
them.

Threads named ``kvm-*`` (``kvm-nx-lpage-recovery``) are listed but not
judged: KVM creates them from a vCPU thread, in that vCPU's cgroup, and
neither libvirt nor Nova can place them.
"""

import dataclasses
import re
from collections.abc import Iterable, Mapping

from nova_emulator_threads.host import findings
from nova_emulator_threads.host import flavor_check
from nova_emulator_threads.host import procfs
from nova_emulator_threads.host import snapshot
from nova_emulator_threads.host import sysfs
from nova_emulator_threads.objects import fields

#: Thread kinds.
VCPU = 'vcpu'
EMULATOR = 'emulator'
IOTHREAD = 'iothread'
VHOST = 'vhost'
KVM = 'kvm'

_VCPU_NAME = re.compile(r'^CPU (\d+)/')
# libvirt names its I/O thread objects "iothread<id>"; QEMU names the
# thread "IO <object id>". "IO mon_iothread" (the monitor) is an emulator
# thread and follows <emulatorpin>.
_IOTHREAD_NAME = re.compile(r'^IO iothread(\d+)$')
_KVM_NAME = re.compile(r'^kvm-')
#: Threads named in one message before "and N more".
_MAX_NAMED = 6


@dataclasses.dataclass(frozen=True)
class GuestThread:
    """A thread of a guest, classified."""

    #: None when the thread was not seen in /proc and libvirt's pin
    #: stands in for it.
    tid: int | None
    name: str
    kind: str
    #: the vCPU number (vcpu) or I/O thread id (iothread).
    index: int | None
    cpus: frozenset[int]


@dataclasses.dataclass(frozen=True)
class GuestReport:
    guest: snapshot.Guest
    threads: tuple[GuestThread, ...]
    policy: flavor_check.NovaPolicy | None


#: (A name of its own: inside ``AuditReport``, ``findings`` is the field.)
Findings = tuple[findings.Finding, ...]


@dataclasses.dataclass(frozen=True)
class AuditReport:
    snapshot: snapshot.HostSnapshot
    guests: tuple[GuestReport, ...]
    findings: Findings

    def findings_for(self, domain: str) -> Findings:
        return tuple(f for f in self.findings if f.domain == domain)


def pinned_vcpus(vcpu_pins: Mapping[int, frozenset[int]],
                 ) -> dict[int, list[int]]:
    """pCPU -> the vCPUs pinned to it alone."""
    owners: dict[int, list[int]] = {}
    for vcpu, pcpus in sorted(vcpu_pins.items()):
        if len(pcpus) == 1:
            owners.setdefault(next(iter(pcpus)), []).append(vcpu)
    return owners


def dedicated_pcpus(report: GuestReport) -> dict[int, str]:
    """pCPU -> what of this guest it is dedicated to (for other guests)."""
    owned = {pcpu: 'vCPU %s' % ','.join(map(str, vcpus))
             for pcpu, vcpus in pinned_vcpus(
                 report.guest.domain.vcpu_pins).items()}
    if report.policy is not None and report.policy.isolate:
        emulator = report.guest.domain.emulator_pins
        if len(emulator) == 1:
            owned.setdefault(next(iter(emulator)), 'its isolated emulator '
                             'threads')
    return owned


def classify(thread: procfs.Thread, pid: int | None,
             iothread_ids: Iterable[int]) -> GuestThread:
    """Tell a QEMU thread's kind from its name."""
    match = _VCPU_NAME.match(thread.name)
    if match:
        return GuestThread(thread.tid, thread.name, VCPU,
                           int(match.group(1)), thread.cpus)
    match = _IOTHREAD_NAME.match(thread.name)
    if match and int(match.group(1)) in set(iothread_ids):
        return GuestThread(thread.tid, thread.name, IOTHREAD,
                           int(match.group(1)), thread.cpus)
    if thread.name == 'vhost-%s' % pid:
        return GuestThread(thread.tid, thread.name, VHOST, None,
                           thread.cpus)
    if _KVM_NAME.match(thread.name):
        return GuestThread(thread.tid, thread.name, KVM, None, thread.cpus)
    return GuestThread(thread.tid, thread.name, EMULATOR, None, thread.cpus)


def guest_threads(guest: snapshot.Guest) -> tuple[GuestThread, ...]:
    """The guest's threads: from /proc, or libvirt's pins standing in."""
    domain = guest.domain
    if guest.threads:
        threads = [classify(t, guest.pid, domain.live.iothread_ids)
                   for t in guest.threads]
        threads += [GuestThread(t.tid, t.name, VHOST, None, t.cpus)
                    for t in guest.vhost_threads]
        return tuple(threads)
    threads = [GuestThread(None, 'vCPU %d' % vcpu, VCPU, vcpu, pcpus)
               for vcpu, pcpus in sorted(domain.vcpu_pins.items())]
    threads.append(GuestThread(None, 'emulatorpin', EMULATOR, None,
                               domain.emulator_pins))
    threads += [GuestThread(None, 'iothreadpin %d' % iothread, IOTHREAD,
                            iothread, pcpus)
                for iothread, pcpus in sorted(domain.iothread_pins.items())]
    return tuple(threads)


def effective_cpus(cpus: frozenset[int],
                   isolated: frozenset[int]) -> frozenset[int]:
    """Where a thread runs.

    The scheduler does not balance load across isolated CPUs, so a thread
    allowed only on isolated CPUs stays on the lowest of them.
    """
    if len(cpus) > 1 and cpus <= isolated:
        return frozenset([min(cpus)])
    return cpus


def _names(threads: list[GuestThread]) -> str:
    names = ['%s/%d' % (t.name, t.tid) if t.tid is not None else t.name
             for t in threads]
    if len(names) > _MAX_NAMED:
        names = names[:_MAX_NAMED] + ['and %d more' % (
            len(names) - _MAX_NAMED)]
    return ', '.join(names)


def _vcpus_on(pcpus: Iterable[int], owners: Mapping[int, list[int]]) -> str:
    return ', '.join('vCPU %s on pCPU %d' % (','.join(map(str, owners[p])), p)
                     for p in sorted(pcpus))


def _verb(threads: list[GuestThread], isolated: frozenset[int]) -> str:
    # Confined to one pCPU (pinned there, or piled up by isolation): they
    # do run there; otherwise the scheduler may put them there.
    confined = all(len(effective_cpus(t.cpus, isolated)) == 1
                   for t in threads)
    return 'run' if confined else 'may run'


def _collisions(report: GuestReport, kinds: tuple[str, ...],
                isolated: frozenset[int], pcpus: Mapping[int, object],
                ) -> tuple[list[GuestThread], frozenset[int]]:
    hit: list[GuestThread] = []
    where: set[int] = set()
    for thread in report.threads:
        if thread.kind not in kinds:
            continue
        overlap = effective_cpus(thread.cpus, isolated) & frozenset(pcpus)
        if overlap:
            hit.append(thread)
            where |= overlap
    return hit, frozenset(where)


def _own_vcpu_findings(report: GuestReport,
                       isolated: frozenset[int]) -> list[findings.Finding]:
    name = report.guest.name
    owners = pinned_vcpus(report.guest.domain.vcpu_pins)
    found = []
    threads, where = _collisions(report, (EMULATOR, IOTHREAD), isolated,
                                 owners)
    if threads:
        found.append(findings.Finding(
            findings.WARNING, findings.EMULATOR_ON_VCPU, name,
            'emulator threads (%s) %s on %s, shared with %s: they preempt '
            'the vCPU whenever they have work'
            % (_names(threads), _verb(threads, isolated),
               findings.pcpus(where), _vcpus_on(where, owners)),
            fixable_by_pin=True))
    threads, where = _collisions(report, (VHOST,), isolated, owners)
    if threads:
        found.append(findings.Finding(
            findings.WARNING, findings.VHOST_ON_VCPU, name,
            'vhost threads (%s) %s on %s, shared with %s: virtio-net packet '
            'processing competes with the vCPU'
            % (_names(threads), _verb(threads, isolated),
               findings.pcpus(where), _vcpus_on(where, owners)),
            fixable_by_pin=True))
    return found


def _sibling_findings(report: GuestReport,
                      host_cpus: sysfs.HostCPUs) -> list[findings.Finding]:
    """Emulator and I/O threads on the other thread of a vCPU's core."""
    if not host_cpus.smt_cores:
        return []
    owners = pinned_vcpus(report.guest.domain.vcpu_pins)
    hit: list[GuestThread] = []
    pairs: set[tuple[int, int]] = set()
    for thread in report.threads:
        if thread.kind not in (EMULATOR, IOTHREAD):
            continue
        found = False
        for pcpu in effective_cpus(thread.cpus, host_cpus.isolated):
            if pcpu in owners:
                # The same pCPU: emulator-on-vcpu-pcpu says so.
                continue
            for sibling in host_cpus.siblings(pcpu) & frozenset(owners):
                pairs.add((pcpu, sibling))
                found = True
        if found:
            hit.append(thread)
    if not hit:
        return []
    where = '; '.join(
        'pCPU %d, an SMT sibling of pCPU %d where vCPU %s runs'
        % (pcpu, sibling, ','.join(map(str, owners[sibling])))
        for pcpu, sibling in sorted(pairs))
    return [findings.Finding(
        findings.WARNING, findings.EMULATOR_ON_VCPU_SIBLING,
        report.guest.name,
        'emulator threads (%s) %s on %s: the hyperthreads share the '
        "core's execution units and caches, so they slow the vCPU down "
        '([emulator_threads] emulator_pcpu_siblings = avoid keeps Nova\'s '
        'isolate pCPU off the vCPUs\' cores)'
        % (_names(hit), _verb(hit, host_cpus.isolated), where))]


def _isolated_findings(report: GuestReport, isolated: frozenset[int],
                       owners: Mapping[int, str]) -> list[findings.Finding]:
    domain = report.guest.domain
    sets = [('emulator pin set', domain.emulator_pins)]
    sets += [('I/O thread %d pin set' % iothread, pcpus)
             for iothread, pcpus in sorted(domain.iothread_pins.items())]
    found = []
    for label, pcpus in sets:
        if len(pcpus) < 2 or not pcpus <= isolated:
            continue
        lowest = min(pcpus)
        where = ('where %s runs' % owners[lowest] if lowest in owners
                 else 'which runs no pinned vCPU, and the other CPUs of the '
                      'set are never used')
        found.append(findings.Finding(
            findings.ERROR if lowest in owners else findings.WARNING,
            findings.EMULATOR_ON_ISOLATED, domain.name,
            '%s %s is on isolated CPUs (isolcpus): the scheduler does not '
            'spread threads over isolated CPUs, so they all run on pCPU %d, '
            '%s' % (label, findings.fmt(pcpus), lowest, where),
            fixable_by_pin=True))
    return found


def _other_guest_findings(report: GuestReport, isolated: frozenset[int],
                          others: Mapping[int, str]) -> list[findings.Finding]:
    threads, where = _collisions(report, (EMULATOR, IOTHREAD, VHOST),
                                 isolated, others)
    if not threads:
        return []
    return [findings.Finding(
        findings.ERROR, findings.ON_OTHER_GUEST, report.guest.name,
        'emulator, I/O or vhost threads (%s) %s on %s, dedicated to %s'
        % (_names(threads), _verb(threads, isolated), findings.pcpus(where),
           ', '.join('%s (pCPU %d)' % (others[p], p) for p in sorted(where))),
        fixable_by_pin=True)]


def _outside_pin_findings(report: GuestReport) -> list[findings.Finding]:
    domain = report.guest.domain
    found = []
    for thread in report.threads:
        if thread.tid is None:
            continue
        if thread.kind == VCPU:
            allowed = domain.vcpu_pins.get(thread.index or 0)
            what = '<vcpupin> of vCPU %s' % thread.index
        elif thread.kind == IOTHREAD:
            allowed = domain.iothread_pins.get(thread.index or 0)
            what = '<iothreadpin> of I/O thread %s' % thread.index
        elif thread.kind == EMULATOR:
            allowed = domain.emulator_pins
            what = '<emulatorpin>'
        else:
            continue
        if allowed is None or thread.cpus <= allowed:
            continue
        found.append(findings.Finding(
            findings.WARNING, findings.OUTSIDE_PIN, domain.name,
            'thread %s/%d may run on CPUs %s, outside its libvirt %s (%s): '
            'its affinity was changed behind libvirt'
            % (thread.name, thread.tid, findings.fmt(thread.cpus - allowed),
               what, findings.fmt(allowed)),
            fixable_by_pin=thread.kind != VCPU))
    return found


def _live_config_findings(guest: snapshot.Guest) -> list[findings.Finding]:
    domain = guest.domain
    if domain.config is None or not domain.active:
        return []
    live, config = domain.live, domain.config
    found = []

    def differ(label: str, now: frozenset[int] | None,
               then: frozenset[int] | None, fixable: bool) -> None:
        if now != then:
            found.append(findings.Finding(
                findings.WARNING, findings.LIVE_CONFIG, domain.name,
                'live %s is %s but the persistent definition says %s: a '
                'restart changes where these threads run'
                % (label, findings.fmt(now) if now else 'not set (any CPU)',
                   findings.fmt(then) if then else 'not set (any CPU)'),
                fixable_by_pin=fixable))

    differ('<emulatorpin>',
           live.cputune.emulatorpin or live.vcpu_cpuset,
           config.cputune.emulatorpin or config.vcpu_cpuset, True)
    for iothread in sorted(set(live.cputune.iothreadpins) |
                           set(config.cputune.iothreadpins)):
        differ('<iothreadpin> of I/O thread %d' % iothread,
               live.cputune.iothreadpins.get(iothread),
               config.cputune.iothreadpins.get(iothread), True)
    for vcpu in sorted(set(live.cputune.vcpupins) |
                       set(config.cputune.vcpupins)):
        differ('<vcpupin> of vCPU %d' % vcpu,
               live.cputune.vcpupins.get(vcpu),
               config.cputune.vcpupins.get(vcpu), False)
    return found


def audit(host: snapshot.HostSnapshot,
          cpu_shared_set: frozenset[int] | None = None,
          shared_pool_affinity: str = fields.SharedPoolAffinity.ANY,
          cpu_nodes: Mapping[int, int] | None = None) -> AuditReport:
    """Audit every guest of a snapshot.

    :param host: what ``snapshot.take_snapshot`` read
    :param cpu_shared_set: the host's ``[compute] cpu_shared_set``, when
        known: it makes the check of Nova ``share`` guests exact
    :param shared_pool_affinity: the host's ``[emulator_threads]
        shared_pool_affinity``
    :param cpu_nodes: the host's CPU -> NUMA node, needed for
        ``shared_pool_affinity = numa``
    :returns: the guests with their classified threads, and the findings
        in guest order
    """
    reports = [GuestReport(guest=guest, threads=guest_threads(guest),
                           policy=flavor_check.read_policy(guest.domain))
               for guest in host.guests]
    dedicated = {r.guest.name: dedicated_pcpus(r) for r in reports}
    isolated = host.cpus.isolated
    found: list[findings.Finding] = []
    for report in reports:
        name = report.guest.name
        own = dedicated[name]
        others: dict[int, str] = {}
        for other, pcpus in dedicated.items():
            if other == name:
                continue
            for pcpu, what in pcpus.items():
                others.setdefault(pcpu, '%s of %s' % (what, other))
        found += _own_vcpu_findings(report, isolated)
        found += _sibling_findings(report, host.cpus)
        found += _isolated_findings(report, isolated, {**others, **own})
        found += _other_guest_findings(report, isolated, others)
        if report.policy is not None:
            found += flavor_check.check(
                report.policy, report.guest.domain, host.cpus.online,
                cpu_shared_set, shared_pool_affinity, cpu_nodes)
        found += _live_config_findings(report.guest)
        found += _outside_pin_findings(report)
    return AuditReport(snapshot=host, guests=tuple(reports),
                       findings=tuple(found))
