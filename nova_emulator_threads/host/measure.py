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


"""What emulator threads cost a guest's vCPUs, measured.

Two samples of a host, some seconds apart, each a ``snapshot`` (the
guests, their threads and where they may run) plus what the scheduler
accounted to every thread of every guest (``procfs.read_schedstat``:
nanoseconds run, nanoseconds waited runnable). The difference is, per
vCPU: how long its thread ran, how long it waited for a CPU, and how much
CPU time the guest's *emulator threads* spent on the vCPU's pCPUs. The
emulator threads are every thread of the QEMU process that is not a vCPU
(main loop, ``IO iothreadN``, ``worker``, ``vnc_worker``, ``IO
mon_iothread``, ...) and the guest's ``vhost-<pid>`` workers, found and
classified as the audit finds them (``audit.guest_threads``). KVM's own
``kvm-*`` helpers are listed but not counted: no pin can move them.

Attribution: the kernel keeps no per-CPU run time per thread, only the
total. So each emulator thread's run time in the interval is shared out
over the pCPUs it may run on (its ``Cpus_allowed_list`` at the second
sample, narrowed as the audit narrows it: a thread allowed only on
several isolated CPUs runs on the lowest of them), equally; a vCPU's
emulator time is the sum of those shares that fall on the pCPUs its own
thread may run on. A thread confined to the vCPU's pCPUs therefore counts
fully and exactly (Nova's default: ``<emulatorpin>`` is the union of the
vCPU pins, one pCPU for a one-vCPU guest), one that may not run there
counts zero, exactly (``isolate``, ``share``); only a thread whose
affinity overlaps the vCPU's pCPUs in part is estimated, as the share
the scheduler would give it if it spread the thread evenly. The verdicts
say "about" for those. Only pinned vCPUs (one pCPU each, as Nova pins
dedicated vCPUs) make findings: a floating vCPU shares its pCPUs with its
emulator threads by design, and gets the figures only.

Threads and guests that come and go are handled: a thread in the second
sample only counts from zero if it started during the interval (its start
time, from ``stat``, is after the first sample), which covers a guest
started meanwhile; a thread of the first sample only (it exited) counts
nothing, since what it ran after the first sample cannot be read any
more; a guest of the first sample only is reported as stopped. A thread
id reused by a new thread is told apart by its start time.

Pure: ``sample`` reads ``/proc`` for a snapshot; ``compare`` works on two
samples only, so the exporter reuses it between scrapes and the tests run
on recorded trees.
"""

import dataclasses
import os
import time
import typing
from collections.abc import Iterable, Mapping, Sequence

from nova_emulator_threads import exception
from nova_emulator_threads.host import audit
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import procfs
from nova_emulator_threads.host import snapshot

#: Finding code: the guest's emulator threads ran on a vCPU's pCPUs.
EMULATOR_TIME_ON_VCPU = 'emulator-time-on-vcpu-pcpu'
#: Emulator time on a vCPU's pCPUs below this is not a finding.
DEFAULT_THRESHOLD_S = 0.001
#: A vCPU that waited less than this share of the interval is not
#: reported as waiting for other tasks.
WAIT_NOTE_SHARE = 0.01
#: Threads named in one verdict, the biggest first.
_MAX_NAMED = 3
#: Kinds that count as emulator threads.
EMULATOR_KINDS = (audit.EMULATOR, audit.IOTHREAD, audit.VHOST)


@dataclasses.dataclass(frozen=True)
class ThreadSample:
    """One thread of a guest, and what the scheduler accounted to it."""

    thread: audit.GuestThread
    #: the thread's id (``thread.tid``, which /proc always gives).
    tid: int
    sched: procfs.SchedStat

    @property
    def key(self) -> tuple[int, int]:
        """(tid, start time): one thread, even when its id is reused."""
        return (self.tid, self.sched.start_ticks)


@dataclasses.dataclass(frozen=True)
class GuestSample:
    guest: snapshot.Guest
    threads: tuple[ThreadSample, ...]


@dataclasses.dataclass(frozen=True)
class HostSample:
    """Every guest's threads at one instant."""

    #: seconds since boot (``/proc/uptime``) just before the threads were
    #: read: the clock of their start times.
    uptime: float
    #: clock ticks per second (``SC_CLK_TCK``), for the start times.
    ticks_per_second: int
    #: CPUs the scheduler does not balance across (see ``audit``).
    isolated: frozenset[int]
    guests: tuple[GuestSample, ...]


@dataclasses.dataclass(frozen=True)
class ThreadUsage:
    """One thread over the interval."""

    tid: int
    name: str
    kind: str
    #: vCPU number or I/O thread id; None for the others.
    index: int | None
    #: where it may run (second sample).
    cpus: frozenset[int]
    ran_s: float
    waited_s: float
    #: it started during the interval (counted from zero).
    started: bool = False


@dataclasses.dataclass(frozen=True)
class VCPUUsage:
    vcpu: int
    #: pCPUs its thread may run on.
    pcpus: frozenset[int]
    ran_s: float
    waited_s: float
    #: CPU time of the guest's emulator threads on ``pcpus``.
    emulator_on_pcpus_s: float
    #: whether that figure is exact (every contributing thread confined
    #: to ``pcpus``) or an even-spread estimate.
    exact: bool
    #: (thread, seconds it contributed), the biggest first.
    stealers: tuple[tuple[ThreadUsage, float], ...]
    #: one sentence for the operator.
    verdict: str

    @property
    def pinned(self) -> bool:
        """Pinned to one pCPU, as Nova pins dedicated vCPUs.

        A floating vCPU shares its pCPUs with its emulator threads by
        design.
        """
        return len(self.pcpus) == 1


@dataclasses.dataclass(frozen=True)
class GuestUsage:
    domain: str
    uuid: str
    pid: int | None
    #: the Nova instance name, for a Nova guest.
    instance: str | None
    vcpus: tuple[VCPUUsage, ...]
    emulator_threads: tuple[ThreadUsage, ...]
    #: threads of the first sample that exited before the second.
    exited_threads: int = 0
    #: threads of the second sample only that did not start in the
    #: interval (seen late, e.g. the guest was not listed yet): their
    #: time is unknown and not counted.
    unmeasured_threads: int = 0
    #: the guest was not in the first sample (started meanwhile).
    started: bool = False

    @property
    def emulator_cpu_s(self) -> float:
        """CPU time of all its emulator threads, wherever they ran."""
        return sum(t.ran_s for t in self.emulator_threads
                   if t.kind in EMULATOR_KINDS)


@dataclasses.dataclass(frozen=True)
class Measurement:
    seconds: float
    guests: tuple[GuestUsage, ...]
    #: domains of the first sample that were gone at the second.
    stopped: tuple[str, ...]
    findings: tuple[findings.Finding, ...]


def _task_dir(proc_root: str, guest: snapshot.Guest,
              thread: audit.GuestThread) -> str:
    # vhost workers of older kernels are processes of their own; newer
    # kernels make them threads of QEMU, found under its task directory.
    if thread.kind == audit.VHOST and thread.tid in {
            t.tid for t in guest.vhost_threads}:
        return os.path.join(proc_root, str(thread.tid))
    return os.path.join(proc_root, str(guest.pid), 'task', str(thread.tid))


def sample(host: snapshot.HostSnapshot,
           proc_root: str = '/proc') -> HostSample:
    """Read what the scheduler accounted to every thread of every guest.

    Guests without a QEMU process in ``/proc`` are kept, with no threads.

    :param host: what ``snapshot.take_snapshot`` read just before
    :param proc_root: where procfs is mounted (a recorded tree in tests)
    :raises: HostInspectionFailed
    """
    uptime = procfs.read_uptime(proc_root)
    guests = []
    for guest in host.guests:
        threads = []
        if guest.pid is not None:
            for thread in audit.guest_threads(guest):
                if thread.tid is None:
                    continue
                sched = procfs.read_schedstat(
                    _task_dir(proc_root, guest, thread))
                if sched is not None:
                    threads.append(ThreadSample(thread, thread.tid, sched))
        guests.append(GuestSample(guest, tuple(threads)))
    return HostSample(uptime=uptime,
                      ticks_per_second=os.sysconf('SC_CLK_TCK'),
                      isolated=host.cpus.isolated, guests=tuple(guests))


def _usage(last: ThreadSample, first: ThreadSample | None) -> ThreadUsage:
    thread = last.thread
    ran = last.sched.ran_ns - (first.sched.ran_ns if first else 0)
    waited = last.sched.waited_ns - (first.sched.waited_ns if first else 0)
    return ThreadUsage(tid=last.tid, name=thread.name, kind=thread.kind,
                       index=thread.index, cpus=thread.cpus,
                       ran_s=max(ran, 0) / 1e9, waited_s=max(waited, 0) / 1e9,
                       started=first is None)


def _ms(seconds: float) -> str:
    return '%.0f ms' % (seconds * 1000) if seconds >= 0.001 else (
        '%.2f ms' % (seconds * 1000))


def _verdict(vcpu: int, pcpus: frozenset[int], ran: float, waited: float,
             on: float, exact: bool,
             stealers: tuple[tuple[ThreadUsage, float], ...],
             threshold: float) -> str:
    where = findings.pcpus(pcpus)
    the = ('the pCPU of vCPU %d' % vcpu if len(pcpus) == 1
           else 'the pCPUs of vCPU %d' % vcpu)
    if len(pcpus) > 1:
        # A floating vCPU shares its pCPUs with its emulator threads by
        # design (no dedicated CPU policy): figures, no alarm.
        return ('vCPU %d floats over %s (not pinned) with its emulator '
                'threads, which ran %s%s there; it waited %s runnable'
                % (vcpu, where, '' if exact else 'about ', _ms(on),
                   _ms(waited)))
    if on >= threshold:
        named = ', '.join('%s/%d %s' % (t.name, t.tid, _ms(s))
                          for t, s in stealers[:_MAX_NAMED])
        return ('emulator threads ran %s%s on %s, %s, which waited %s '
                'runnable (most: %s): pin them to other pCPUs '
                '(hw:cpu_emulator_threads=isolate or share, or '
                'nova-emulator-threads pin)'
                % ('' if exact else 'about ', _ms(on), where, the,
                   _ms(waited), named))
    if waited >= WAIT_NOTE_SHARE * (ran + waited) and waited >= threshold:
        return ('no emulator time on %s, %s; it waited %s runnable '
                'behind other tasks there (other guests or host '
                'processes: see isolcpus and the host\'s CPU affinity)'
                % (where, the, _ms(waited)))
    return 'no emulator time on %s, %s; it waited %s runnable' % (
        where, the, _ms(waited))


def _vcpu_usage(vcpu: ThreadUsage, emulators: Iterable[ThreadUsage],
                isolated: frozenset[int], threshold: float) -> VCPUUsage:
    pcpus = audit.effective_cpus(vcpu.cpus, isolated)
    on = 0.0
    exact = True
    stealers = []
    for thread in emulators:
        cpus = audit.effective_cpus(thread.cpus, isolated)
        overlap = cpus & pcpus
        if not overlap or not cpus or thread.ran_s <= 0:
            continue
        share = thread.ran_s * len(overlap) / len(cpus)
        exact = exact and cpus <= pcpus
        on += share
        stealers.append((thread, share))
    stealers.sort(key=lambda pair: (-pair[1], pair[0].tid))
    return VCPUUsage(
        vcpu=vcpu.index or 0, pcpus=pcpus, ran_s=vcpu.ran_s,
        waited_s=vcpu.waited_s, emulator_on_pcpus_s=on, exact=exact,
        stealers=tuple(stealers),
        verdict=_verdict(vcpu.index or 0, pcpus, vcpu.ran_s, vcpu.waited_s,
                         on, exact, tuple(stealers), threshold))


def _guest_usage(last: GuestSample, first: GuestSample | None,
                 first_uptime: float, ticks_per_second: int,
                 isolated: frozenset[int], threshold: float) -> GuestUsage:
    before: Mapping[tuple[int, int], ThreadSample] = {
        t.key: t for t in (first.threads if first else ())}
    # One tick of slack: start times are counted in whole ticks.
    since = first_uptime * ticks_per_second - 1
    used = []
    unmeasured = 0
    for thread in last.threads:
        earlier = before.get(thread.key)
        if earlier is None and thread.sched.start_ticks < since:
            unmeasured += 1
            continue
        used.append(_usage(thread, earlier))
    seen = {t.key for t in last.threads}
    exited = sum(key not in seen for key in before)
    emulators = [t for t in used if t.kind in EMULATOR_KINDS]
    vcpus = tuple(sorted(
        (_vcpu_usage(t, emulators, isolated, threshold)
         for t in used if t.kind == audit.VCPU),
        key=lambda v: v.vcpu))
    domain = last.guest.domain
    return GuestUsage(
        domain=domain.name, uuid=domain.uuid, pid=last.guest.pid,
        instance=domain.nova.instance_name if domain.nova else None,
        vcpus=vcpus,
        emulator_threads=tuple(sorted(
            (t for t in used if t.kind != audit.VCPU),
            key=lambda t: (-t.ran_s, t.tid))),
        exited_threads=exited, unmeasured_threads=unmeasured,
        started=first is None)


def compare(first: HostSample, last: HostSample, seconds: float,
            threshold: float = DEFAULT_THRESHOLD_S) -> Measurement:
    """What happened between two samples.

    :param first: the earlier sample
    :param last: the later sample (its guests are the ones reported)
    :param seconds: the time between them
    :param threshold: emulator seconds on a vCPU's pCPUs from which on
        it is a finding
    """
    earlier = {(g.guest.domain.uuid, g.guest.pid): g for g in first.guests}
    guests = []
    found = []
    for guest in last.guests:
        usage = _guest_usage(
            guest, earlier.get((guest.guest.domain.uuid, guest.guest.pid)),
            first.uptime, last.ticks_per_second, last.isolated, threshold)
        guests.append(usage)
        for vcpu in usage.vcpus:
            if (vcpu.emulator_on_pcpus_s >= threshold and
                    vcpu.pinned):
                found.append(findings.Finding(
                    findings.WARNING, EMULATOR_TIME_ON_VCPU, usage.domain,
                    'vCPU %d: %s' % (vcpu.vcpu, vcpu.verdict),
                    fixable_by_pin=True))
    now = {g.guest.domain.uuid for g in last.guests}
    stopped = tuple(sorted(g.guest.domain.name for g in first.guests
                           if g.guest.domain.uuid not in now))
    return Measurement(seconds=seconds, guests=tuple(guests),
                       stopped=stopped, findings=tuple(found))


def select(host: snapshot.HostSnapshot,
           names: Iterable[str]) -> snapshot.HostSnapshot:
    """The snapshot with only the named guests (name or UUID)."""
    wanted = {name.lower() for name in names}
    if not wanted:
        return host
    return dataclasses.replace(host, guests=tuple(
        g for g in host.guests
        if g.name.lower() in wanted or g.domain.uuid in wanted))


def _wait(seconds: float) -> None:
    """The interval between the samples (a seam for recorded trees)."""
    time.sleep(seconds)


def measure_host(conn: typing.Any, seconds: float,
                 names: Sequence[str] = (), proc_root: str = '/proc',
                 sys_root: str = '/sys',
                 threshold: float = DEFAULT_THRESHOLD_S) -> Measurement:
    """Sample this host's guests twice, ``seconds`` apart, and compare.

    The interval reported is the one between the two samples by
    ``/proc/uptime``, the clock the kernel's start times use.

    :param conn: a libvirt connection to this host's daemon
    :param names: guests to measure (names or UUIDs); all when empty
    :raises: DomainNotFound for a name no running guest has,
        HostInspectionFailed
    """
    first_host = select(snapshot.take_snapshot(conn, proc_root, sys_root),
                        names)
    found = {g.name.lower() for g in first_host.guests} | {
        g.domain.uuid for g in first_host.guests}
    for name in names:
        if name.lower() not in found:
            raise exception.DomainNotFound(domain=name)
    first = sample(first_host, proc_root)
    _wait(seconds)
    last_host = select(snapshot.take_snapshot(conn, proc_root, sys_root),
                       names)
    last = sample(last_host, proc_root)
    return compare(first, last, max(last.uptime - first.uptime, 0.0),
                   threshold)
