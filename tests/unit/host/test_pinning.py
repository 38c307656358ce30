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


"""``host.pinning`` on libvirt's test driver.

Failures are real libvirt failures: the wrapper below passes a call on to
the real domain after spoiling its argument (an empty CPU map, which
libvirt rejects) or after stopping the guest, so the errors, their codes
and the state left behind are libvirt's own.
"""

import typing

from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.host import pinning
from tests.unit import base
from tests.unit.host import testdriver

libvirt = testdriver.libvirt
WIDTH = 8


class Sabotage:
    """A real ``virDomain`` whose pin calls can be made to fail."""

    def __init__(self, dom: typing.Any,
                 spoil: typing.Callable[[str, tuple, int], bool],
                 stop_before_live: bool = False,
                 ignore_live: bool = False) -> None:
        self._dom = dom
        self._spoil = spoil
        self._stop_before_live = stop_before_live
        # A driver that accepts a live pin without applying it: the one
        # fault here that is not libvirt's own, for the read-back check.
        self._ignore_live = ignore_live
        self.calls: list[tuple[str, frozenset[int], int]] = []

    def __getattr__(self, name: str) -> typing.Any:
        attr = getattr(self._dom, name)
        if name not in ('pinEmulator', 'pinIOThread'):
            return attr

        def call(*args: typing.Any) -> typing.Any:
            cpumap, flags = args[-2], args[-1]
            self.calls.append((name, libvirt_domains.cpus_from_map(cpumap),
                               flags))
            if (self._stop_before_live and
                    flags == libvirt.VIR_DOMAIN_AFFECT_LIVE and
                    self._dom.isActive()):
                self._dom.destroy()
            if self._spoil(name, args, len(self.calls)):
                args = args[:-2] + ((False,) * len(cpumap), flags)
            if self._ignore_live and flags == libvirt.VIR_DOMAIN_AFFECT_LIVE:
                return 0
            return attr(*args)
        return call


def never(name: str, args: tuple, count: int) -> bool:
    return False


class PinningTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.node = self.useFixture(testdriver.TestDriverFixture(
            [testdriver.isolcpus_guest()]))
        self.dom = self.node.conn.lookupByName('instance-00000009')

    def pins(self, flags: int) -> tuple[frozenset[int], dict[int, frozenset]]:
        return (libvirt_domains.cpus_from_map(self.dom.emulatorPinInfo(flags)),
                libvirt_domains.iothread_pins(self.dom, flags))

    def test_live_and_config(self) -> None:
        result = pinning.pin_emulator(self.dom, frozenset([0]), live=True,
                                      config=True, width=WIDTH)
        self.assertTrue(result.ok, result.summary())
        self.assertEqual(
            [('config', None, {1, 2, 3}), ('config', 1, {1, 2, 3}),
             ('live', None, {1, 2, 3}), ('live', 1, {1, 2, 3})],
            [(s.scope, s.iothread, s.before) for s in result.steps])
        self.assertEqual({pinning.APPLIED},
                         {s.state for s in result.steps})
        # A loop, not cases: both definitions of the one guest.
        for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE,
                      libvirt.VIR_DOMAIN_AFFECT_CONFIG):
            self.assertEqual(({0}, {1: {0}}), self.pins(flags))

    def test_applied_hook_sees_each_step_once_libvirt_took_it(self) -> None:
        seen = []

        def applied(step: pinning.Step) -> None:
            # Called after the call, before the next one starts.
            seen.append((step.scope, step.iothread, step.state,
                         self.pins(pinning._flags(libvirt)[step.scope])))

        pinning.pin_emulator(self.dom, frozenset([0]), live=True,
                             config=True, width=WIDTH, applied=applied)
        self.assertEqual([
            ('config', None, pinning.APPLIED, ({0}, {1: {1, 2, 3}})),
            ('config', 1, pinning.APPLIED, ({0}, {1: {0}})),
            ('live', None, pinning.APPLIED, ({0}, {1: {1, 2, 3}})),
            ('live', 1, pinning.APPLIED, ({0}, {1: {0}})),
        ], seen)

    def test_config_is_changed_before_live(self) -> None:
        dom = Sabotage(self.dom, never)
        pinning.pin_emulator(dom, frozenset([0]), live=True, config=True,
                             width=WIDTH)
        self.assertEqual(
            [libvirt.VIR_DOMAIN_AFFECT_CONFIG] * 2 +
            [libvirt.VIR_DOMAIN_AFFECT_LIVE] * 2,
            [flags for _name, _cpus, flags in dom.calls])

    def test_live_only(self) -> None:
        result = pinning.pin_emulator(self.dom, frozenset([4, 5]), live=True,
                                      config=False, width=WIDTH)
        self.assertTrue(result.ok)
        self.assertEqual(({4, 5}, {1: {4, 5}}),
                         self.pins(libvirt.VIR_DOMAIN_AFFECT_LIVE))
        self.assertEqual(({1, 2, 3}, {1: {1, 2, 3}}),
                         self.pins(libvirt.VIR_DOMAIN_AFFECT_CONFIG))

    def test_live_failure_undoes_config(self) -> None:
        # The live I/O thread call (the 4th) fails in libvirt.
        dom = Sabotage(self.dom, lambda name, args, n: n == 4)
        result = pinning.pin_emulator(dom, frozenset([0]), live=True,
                                      config=True, width=WIDTH)
        self.assertFalse(result.ok)
        self.assertEqual(
            [pinning.ROLLED_BACK, pinning.ROLLED_BACK, pinning.ROLLED_BACK,
             pinning.FAILED],
            [s.state for s in result.steps])
        self.assertIn('Empty iothread cpumap', result.steps[3].error)
        self.assertEqual('changing the live I/O thread 1 failed; nothing '
                         'was changed', result.summary())
        # Live and persistent pins are what they were, and agree (a loop,
        # not cases: both definitions of the one guest).
        for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE,
                      libvirt.VIR_DOMAIN_AFFECT_CONFIG):
            self.assertEqual(({1, 2, 3}, {1: {1, 2, 3}}), self.pins(flags))

    def test_failed_undo_is_reported(self) -> None:
        # The live emulator call fails, then so does undoing the config
        # I/O thread pin (calls 3 and 4; the undo runs newest first).
        dom = Sabotage(self.dom, lambda name, args, n: n in (3, 4))
        result = pinning.pin_emulator(dom, frozenset([0]), live=True,
                                      config=True, width=WIDTH)
        self.assertEqual(
            [pinning.ROLLED_BACK, pinning.ROLLBACK_FAILED, pinning.FAILED,
             pinning.NOT_ATTEMPTED],
            [s.state for s in result.steps])
        self.assertEqual(
            'changing the live emulator threads failed; left changed: '
            'config I/O thread 1 = 0', result.summary())
        self.assertEqual(({1, 2, 3}, {1: {0}}),
                         self.pins(libvirt.VIR_DOMAIN_AFFECT_CONFIG))

    def test_guest_stops_between_config_and_live(self) -> None:
        dom = Sabotage(self.dom, never, stop_before_live=True)
        result = pinning.pin_emulator(dom, frozenset([0]), live=True,
                                      config=True, width=WIDTH)
        self.assertFalse(result.ok)
        self.assertEqual([pinning.APPLIED, pinning.APPLIED, pinning.STOPPED,
                          pinning.STOPPED], [s.state for s in result.steps])
        self.assertEqual(
            'the guest stopped before its live pins were changed; left '
            'changed: config emulator threads = 0, config I/O thread 1 = 0',
            result.summary())
        # The definition it starts with holds the new pins.
        self.assertFalse(self.dom.isActive())
        self.assertEqual(({0}, {1: {0}}), self.pins(0))

    def test_config_failure_changes_nothing(self) -> None:
        dom = Sabotage(self.dom, lambda name, args, n: n == 1)
        result = pinning.pin_emulator(dom, frozenset([0]), live=True,
                                      config=True, width=WIDTH)
        self.assertEqual([pinning.FAILED] + [pinning.NOT_ATTEMPTED] * 3,
                         [s.state for s in result.steps])
        self.assertIn('nothing was changed', result.summary())

    def test_pins_are_read_back(self) -> None:
        dom = Sabotage(self.dom, never, ignore_live=True)
        result = pinning.pin_emulator(dom, frozenset([0]), live=True,
                                      config=True, width=WIDTH)
        self.assertEqual([pinning.APPLIED, pinning.APPLIED,
                          pinning.NOT_IN_EFFECT, pinning.NOT_IN_EFFECT],
                         [s.state for s in result.steps])
        self.assertEqual(
            'libvirt accepted the pins but reports live emulator threads is '
            '1-3, live I/O thread 1 is 1-3; left changed: config emulator '
            'threads = 0, config I/O thread 1 = 0', result.summary())

    def test_interrupted_pin_is_undone(self) -> None:
        def interrupt(name: str, args: tuple, count: int) -> bool:
            if count == 3:
                raise KeyboardInterrupt
            return False
        result = pinning.pin_emulator(Sabotage(self.dom, interrupt),
                                      frozenset([0]), live=True, config=True,
                                      width=WIDTH)
        self.assertEqual('interrupted; nothing was changed',
                         result.summary())
        self.assertEqual([pinning.ROLLED_BACK, pinning.ROLLED_BACK,
                          pinning.INTERRUPTED, pinning.NOT_ATTEMPTED],
                         [s.state for s in result.steps])
        # A loop, not cases: both definitions of the one guest.
        for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE,
                      libvirt.VIR_DOMAIN_AFFECT_CONFIG):
            self.assertEqual(({1, 2, 3}, {1: {1, 2, 3}}), self.pins(flags))

    def test_vanished_guest(self) -> None:
        self.dom.destroy()
        self.dom.undefine()
        result = pinning.pin_emulator(self.dom, frozenset([0]), live=True,
                                      config=True, width=WIDTH)
        self.assertFalse(result.ok)
        self.assertEqual([], result.steps)
        self.assertIn('nothing was changed', result.summary())

    def test_step_description(self) -> None:
        step = pinning.Step('live', 1, frozenset({1, 2, 3}), frozenset({0}),
                            pinning.FAILED, 'boom')
        self.assertEqual('live   I/O thread 1     1-3 -> 0: failed (boom)',
                         step.describe())
