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

"""Our fitter against Nova 34's, on the same generated inputs.

Fails on the first disagreement and prints the case, so it can be turned
into a regression test.
"""

import collections

import testtools
from oslo_config import fixture as config_fixture

from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import packing
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit import nova_patch_fixture
from tests.unit.virt import cases
from tests.unit.virt import nova_reference as ref

#: Number of generated cases; the first seed is fixed so failures repeat.
CASES = 2500
FIRST_SEED = 20261121


def _both(case: cases.Case, **fit_kwargs):
    """Our answer and Nova's (with the seams as the test set them) on one
    generated case: ``(host, ours, Nova's summary, our summary)``.

    Both fitters get the same host: Nova's objects, and ours holding the
    very same sets (see HostCell on set order).
    """
    nova_host = ref.nova_host(case.host)
    host = ref.ours_from_nova(nova_host)
    ours = hardware.fit_instance_to_host(host, case.inst, case.limits,
                                         **fit_kwargs)
    nova = ref.nova_claimable_fit(nova_host, ref.nova_instance(case.inst),
                                  ref.nova_limits(case.limits))
    return host, ours, ref.summary_of_nova(nova), ref.summary_of_ours(ours)


class TestFitMatchesNova(base.TestCase):

    def test_same_decisions_as_nova(self) -> None:
        outcomes: collections.Counter[str] = collections.Counter()
        # A loop, not cases: generated cases, stopping at the first that
        # differs from Nova and printing it.
        for seed in range(FIRST_SEED, FIRST_SEED + CASES):
            case = cases.random_case(seed)
            _host, ours, expected, got = _both(case)
            if expected != got:
                self.fail('%s\n  nova: %r\n  ours: %r'
                          % (case.describe(), expected, got))
            if ours is None:
                outcomes['no fit'] += 1
            else:
                outcomes['fit'] += 1
                if ours.cpuset_reserved:
                    outcomes['fit with cpuset_reserved'] += 1
                if len(ours.cells) > 1:
                    outcomes['multi-cell fit'] += 1
        # The generator must exercise both answers, or the comparison above
        # proves little.
        self.addDetail('outcomes', testtools.content.text_content(
            repr(dict(outcomes))))
        # (A loop, not cases: counts of the one run above.)
        for outcome in ('fit', 'no fit', 'fit with cpuset_reserved',
                        'multi-cell fit'):
            self.assertGreater(outcomes[outcome], CASES // 20, outcome)


class TestAvoidMatchesNovaWithTheSeam(base.TestCase):
    """``emulator_pcpu_siblings = avoid``: our engine against Nova's
    fitter with the packing seam (``nova_patch``) applied, on the same
    generated cases as above.
    """

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.useFixture(config_fixture.Config()).config(
            emulator_pcpu_siblings='avoid', group='emulator_threads')

    def test_same_decisions_as_nova_with_the_seam(self) -> None:
        outcomes: collections.Counter[str] = collections.Counter()
        # A loop, not cases: as above, with the seam.
        for seed in range(FIRST_SEED, FIRST_SEED + CASES):
            case = cases.random_case(seed)
            host, ours, expected, got = _both(
                case, emulator_pcpu_siblings='avoid')
            if expected != got:
                self.fail('%s\n  nova+seam: %r\n  ours: %r'
                          % (case.describe(), expected, got))
            allowed = ref.summary_of_ours(hardware.fit_instance_to_host(
                host, case.inst, case.limits))
            if ours is not None and ours.cpuset_reserved:
                outcomes['fit with cpuset_reserved'] += 1
            if allowed != got:
                outcomes['fit' if ours else 'no fit'] += 1
                # Only the emulator pCPU, or where guest cell 0 goes,
                # changes.
                if ours is not None and allowed is not None:
                    outcomes['other emulator pCPU' if [
                        cell[:2] for cell in allowed] == [
                        cell[:2] for cell in got] else
                        'other host cell'] += 1
        self.addDetail('outcomes', testtools.content.text_content(
            repr(dict(outcomes))))
        # Not vacuous: avoid changed Nova's answer, both to another
        # emulator pCPU and to no fit (another host cell for guest cell 0
        # is rarer: see test_hardware).
        self.assertGreater(outcomes['fit with cpuset_reserved'], CASES // 20)
        self.assertGreater(outcomes['other emulator pCPU'], CASES // 100)
        self.assertGreater(outcomes['no fit'], 4)


class TestNovaAnswersItsClaimRefuses(base.TestCase):
    """Where Nova's fitter answers with pins its own claim refuses."""

    #: A seed of the generator where Nova's fit cache, keyed on cell ids
    #: it rewrites, hands guest cell 0 the pins it got on another host
    #: cell.
    FOREIGN_PINS_SEED = 20262447

    def test_emulator_pcpu_on_a_pinned_core(self) -> None:
        # cpu_thread_policy=isolate: Nova's _get_reserved takes a free
        # thread of a core whose other thread is pinned; its claim takes
        # whole cores and refuses it. The packing knows it when it picks.
        xml = cases.caps_xml(1, 4, 2, True, [4096], None)
        host = capabilities.host_topology_from_caps(xml, '', '', '0')
        inst = guest_topology.instance_topology_from_flavor(2, 512, {
            'hw:cpu_policy': 'dedicated', 'hw:cpu_thread_policy': 'isolate',
            'hw:cpu_emulator_threads': 'isolate'})
        cell = host.cells[0]
        self.assertEqual(((3, 2), frozenset({4}), False), packing.pack_cell(
            cell, packing.cell_info(cell), (0, 1), 'isolate', 1))
        self.assertIsNone(hardware.fit_instance_to_host(host, inst))
        self.assertIn('shares a core with pinned pCPU 0',
                      hardware.explain_no_fit(host, inst))
        fitted = hardware.fit_instance_to_host(host, inst, claimable=False)
        self.assertEqual(frozenset({4}), fitted.cells[0].cpuset_reserved)
        nova_host = ref.nova_host(host)
        self.assertIsNotNone(ref.nova_fit(nova_host, ref.nova_instance(inst)))
        self.assertIsNone(ref.nova_claimable_fit(nova_host,
                                                 ref.nova_instance(inst)))

    def test_foreign_pins(self) -> None:
        case = cases.random_case(self.FOREIGN_PINS_SEED)
        nova_host = ref.nova_host(case.host)
        host = ref.ours_from_nova(nova_host)
        raw = ref.nova_fit(nova_host, ref.nova_instance(case.inst),
                           ref.nova_limits(case.limits))
        self.assertIsNotNone(raw)
        self.assertIsNone(ref.nova_claimable_fit(
            nova_host, ref.nova_instance(case.inst),
            ref.nova_limits(case.limits)))
        # We answer "no fit" and say why...
        self.assertIsNone(hardware.fit_instance_to_host(
            host, case.inst, case.limits))
        self.assertIn('Nova would reuse pins of guest cell 0 from another '
                      'host cell', hardware.explain_no_fit(
                          host, case.inst, case.limits))
        # ...but can give Nova's answer as it is, for the filter.
        self.assertEqual(ref.summary_of_nova(raw), ref.summary_of_ours(
            hardware.fit_instance_to_host(host, case.inst, case.limits,
                                          claimable=False)))
