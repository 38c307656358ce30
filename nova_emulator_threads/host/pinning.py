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


"""Move a guest's emulator and I/O threads, live and in its definition.

``virsh emulatorpin --live --config`` is one libvirt call that changes
the live pins and then the persistent definition; if the second part
fails, the first stays and nobody is told which part happened. Here each
change is its own call, recorded as a ``Step``, in this order:

1. the persistent definition (``VIR_DOMAIN_AFFECT_CONFIG``): emulator
   threads, then each I/O thread;
2. the live guest (``VIR_DOMAIN_AFFECT_LIVE``): the same.

Definition first, because if we are interrupted between the two (killed,
or the host dies) the guest is left with a definition that already holds
the new placement and a live state that its next start will bring in
line; the reverse order would leave a live change that a restart
silently undoes, which is why a pin made with ``virsh emulatorpin
--live`` alone is lost at the guest's next start. Live changes are also
the ones that fail in practice (a cgroup that does not allow the CPUs, a
guest that stops meanwhile), and undoing a definition change is a file
rewrite by libvirt, which does not fail for those reasons.

On a failure every step already applied is undone, newest first, to the
pins read before we started, and the result says, step by step, what was
applied, what was undone and what could not be undone. The one
exception: when the guest stops running between the two phases, its
definition keeps the new pins (there is no live state left to disagree
with it, and the guest starts with them).

Undoing a definition that had no ``<emulatorpin>`` writes one that
lists the CPUs libvirt reported for it (the same placement, now
explicit): libvirt has no call that removes the element.
"""

import dataclasses
import typing

from nova_emulator_threads.host import findings
from nova_emulator_threads.host import libvirt_domains

CONFIG = 'config'
LIVE = 'live'

APPLIED = 'applied'
FAILED = 'failed'
ROLLED_BACK = 'undone'
ROLLBACK_FAILED = 'NOT undone'
NOT_ATTEMPTED = 'not attempted'
NOT_IN_EFFECT = 'accepted, but not in effect'
STOPPED = 'not applied: the guest stopped'
INTERRUPTED = 'interrupted, then undone'



@dataclasses.dataclass
class Step:
    """One libvirt call of a pin, and what became of it."""

    scope: str
    #: None for the emulator threads, else the I/O thread id.
    iothread: int | None
    before: frozenset[int]
    after: frozenset[int]
    state: str = NOT_ATTEMPTED
    error: str | None = None

    @property
    def target(self) -> str:
        if self.iothread is None:
            return 'emulator threads'
        return 'I/O thread %d' % self.iothread

    @property
    def changed(self) -> bool:
        """Whether the guest is left with this step's new pins."""
        return self.state in (APPLIED, ROLLBACK_FAILED)

    def describe(self) -> str:
        line = '%-6s %-16s %s -> %s: %s' % ( self.scope,
                                             self.target,
                                             findings.fmt(
                                                 self.before),
                                             findings.fmt(
                                                 self.after),
                                             self.state)
        if self.error:
            line += ' (%s)' % self.error
        return line


@dataclasses.dataclass
class PinResult:
    domain: str
    steps: list[Step]
    #: what went wrong; None when every step was applied and verified.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One sentence: the error, and what is left changed."""
        changed = [s for s in self.steps if s.changed]
        if not changed:
            left = 'nothing was changed'
        else:
            left = 'left changed: %s' % ', '.join(
                '%s %s = %s' % (s.scope, s.target, findings.fmt(s.after))
                for s in changed)
        if self.error is None:
            return left
        return '%s; %s' % (self.error, left)


def _flags(libvirt: typing.Any) -> dict[str, int]:
    return {CONFIG: libvirt.VIR_DOMAIN_AFFECT_CONFIG,
            LIVE: libvirt.VIR_DOMAIN_AFFECT_LIVE}


def read_steps(dom: typing.Any, cpus: frozenset[int],
               scopes: typing.Sequence[str]) -> list[Step]:
    """The steps of a pin, with the pins each one replaces.

    :raises: libvirt.libvirtError
    """
    libvirt = libvirt_domains.libvirt_module()
    flags = _flags(libvirt)
    steps = []
    for scope in scopes:
        steps.append(Step(scope, None, libvirt_domains.cpus_from_map(
            dom.emulatorPinInfo(flags[scope])), cpus))
        for iothread, pcpus in sorted(libvirt_domains.iothread_pins(
                dom, flags[scope]).items()):
            steps.append(Step(scope, iothread, pcpus, cpus))
    return steps


def _apply(dom: typing.Any, step: Step, cpus: frozenset[int], width: int,
           flags: dict[str, int]) -> None:
    cpumap = libvirt_domains.map_from_cpus(cpus, width)
    if step.iothread is None:
        dom.pinEmulator(cpumap, flags[step.scope])
    else:
        dom.pinIOThread(step.iothread, cpumap, flags[step.scope])


def _still_running(dom: typing.Any, libvirt: typing.Any) -> bool:
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError:
        return False


def _undo(dom: typing.Any, steps: list[Step], width: int,
          flags: dict[str, int], libvirt: typing.Any) -> None:
    for step in reversed(steps):
        if step.state != APPLIED:
            continue
        try:
            _apply(dom, step, step.before, width, flags)
            step.state = ROLLED_BACK
        except libvirt.libvirtError as exc:
            step.state = ROLLBACK_FAILED
            step.error = libvirt_domains.error_text(exc)


def _verify(dom: typing.Any, result: PinResult, cpus: frozenset[int],
            scopes: typing.Sequence[str], libvirt: typing.Any) -> None:
    try:
        now = read_steps(dom, cpus, scopes)
    except libvirt.libvirtError as exc:
        result.error = ('the pins were changed but cannot be read back: %s'
                        % libvirt_domains.error_text(exc))
        return
    wrong = []
    for step, check in zip(result.steps, now):
        if check.before != cpus:
            step.state = NOT_IN_EFFECT
            step.error = 'libvirt reports %s' % findings.fmt(check.before)
            wrong.append('%s %s is %s' % (step.scope, step.target,
                                          findings.fmt(check.before)))
    if wrong:
        result.error = ('libvirt accepted the pins but reports %s'
                        % ', '.join(wrong))


def pin_emulator(dom: typing.Any, cpus: frozenset[int], *, live: bool,
                 config: bool, width: int,
                 applied: typing.Callable[[Step], None] | None = None
                 ) -> PinResult:
    """Pin a guest's emulator and I/O threads to ``cpus``.

    The CPU set must have been validated (``remedy.problems``).

    :param dom: the ``libvirt.virDomain``
    :param cpus: the new set
    :param live: change the running guest
    :param config: change the persistent definition
    :param width: the number of host CPUs in libvirt's CPU maps
    :param applied: called with each step libvirt has applied, before the
        next one starts (the hypervisor tests kill libvirtd from it, to
        see what a fault between two steps leaves)
    :returns: the result; its ``error`` is set when not every step was
        applied, and its steps say which were
    """
    libvirt = libvirt_domains.libvirt_module()
    flags = _flags(libvirt)
    name = dom.name()
    scopes = [scope for scope, wanted in ((CONFIG, config), (LIVE, live))
              if wanted]
    try:
        steps = read_steps(dom, cpus, scopes)
    except libvirt.libvirtError as exc:
        return PinResult(name, [], 'cannot read its current pins: %s'
                         % libvirt_domains.error_text(exc))
    result = PinResult(name, steps)
    for index, step in enumerate(steps):
        try:
            _apply(dom, step, cpus, width, flags)
        except KeyboardInterrupt:
            # Python raises it once the libvirt call has returned, so the
            # step may have been applied: undo it with the others.
            step.state = APPLIED
            _undo(dom, steps[:index + 1], width, flags, libvirt)
            if step.state == ROLLED_BACK:
                step.state = INTERRUPTED
            result.error = 'interrupted'
            return result
        except libvirt.libvirtError as exc:
            result.error = _step_failed(dom, steps, index, exc, width, flags,
                                        libvirt)
            return result
        step.state = APPLIED
        if applied is not None:
            applied(step)
    _verify(dom, result, cpus, scopes, libvirt)
    return result


def _step_failed(dom: typing.Any, steps: list[Step], index: int,
                 exc: Exception, width: int, flags: dict[str, int],
                 libvirt: typing.Any) -> str:
    """Record why step ``index`` failed and undo the steps before it.

    A guest that stopped under a live step has no live pins left to
    change or undo: its live steps are marked stopped instead.

    :returns: the result's error
    """
    step = steps[index]
    step.state = FAILED
    step.error = libvirt_domains.error_text(exc)
    if (step.scope == LIVE and libvirt_domains.is_gone(exc) and
            not _still_running(dom, libvirt)):
        for later in steps[index:]:
            if later.scope == LIVE:
                later.state = STOPPED
        return 'the guest stopped before its live pins were changed'
    _undo(dom, steps[:index], width, flags, libvirt)
    return 'changing the %s %s failed' % (step.scope, step.target)
