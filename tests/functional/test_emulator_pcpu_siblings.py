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

"""``[emulator_threads] emulator_pcpu_siblings`` on an SMT host.

One compute host of one NUMA cell with four cores of two threads (fake
libvirt numbers the threads of a core one after the other: cores {0,1},
{2,3}, {4,5}, {6,7}), every CPU dedicated. Servers are booted through the
API; what the scheduler's fitter (``NUMATopologyFilter``, with the seam of
``nova_patch``) and the compute host's NUMA claim answered is recorded
from Nova's own ``numa_fit_instance_to_host``, and compared with the
domain XML libvirt got, which the driver builds from the claim.
"""

import os
import sys
from typing import Any

import fixtures
from nova.virt import hardware as nova_hardware

from nova_emulator_threads import conf
from tests.functional import base

ISOLATE = {'hw__cpu_policy': 'dedicated',
           'hw__cpu_emulator_threads': 'isolate'}
HOST = 'smt'


class EmulatorPCPUSiblingsTest(base.EmulatorThreadsTestBase):

    def setUp(self) -> None:
        super().setUp()
        self.fits: list[tuple[str, Any]] = []
        original = nova_hardware.numa_fit_instance_to_host
        fits = self.fits

        def numa_fit_instance_to_host(*args: Any, **kwargs: Any) -> Any:
            # Who asked: the scheduler's filter or host manager, or the
            # compute host's claim.
            caller = os.path.basename(sys._getframe(1).f_code.co_filename)
            fitted = original(*args, **kwargs)
            fits.append((caller, None if fitted is None else
                         set(fitted.cells[0].cpuset_reserved or ())))
            return fitted

        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.hardware.numa_fit_instance_to_host',
            numa_fit_instance_to_host))
        self.start_host(HOST, dedicated='0-7', cells=1, cores=4, threads=2)
        self.isolate = self.flavor(vcpus=1, **ISOLATE)

    def siblings(self) -> list[set[int]]:
        return [set(sib) for sib in self.host_numa(HOST).cells[0].siblings]

    def core_of(self, pcpu: int) -> set[int]:
        return next(sib for sib in self.siblings() if pcpu in sib)

    def pins(self, server: dict[str, Any]) -> tuple[int, int]:
        """(the vCPU's pCPU, the emulator pCPU).

        Checked against the claim's ``cpuset_reserved``.
        """
        tune = self.cputune(server, HOST)
        (vcpu_pcpu,) = tune['vcpupin'][0]
        (emulator,) = tune['emulatorpin']
        self.assertEqual({emulator},
                         self.instance_numa(server).cells[0].cpuset_reserved)
        return vcpu_pcpu, emulator

    def answers(self, caller: str) -> list[Any]:
        return [fitted for who, fitted in self.fits if who == caller]

    def test_default_is_novas_sibling(self) -> None:
        self.assertEqual(
            'allow', conf.CONF.emulator_threads.emulator_pcpu_siblings)
        server = self.boot(self.isolate)
        vcpu_pcpu, emulator = self.pins(server)
        # Nova's choice: the other thread of the vCPU's core.
        self.assertEqual(self.core_of(vcpu_pcpu), {vcpu_pcpu, emulator})

    def test_avoid_takes_another_core(self) -> None:
        self.flags(emulator_pcpu_siblings='avoid', group='emulator_threads')
        server = self.boot(self.isolate)
        vcpu_pcpu, emulator = self.pins(server)
        self.assertNotIn(emulator, self.core_of(vcpu_pcpu))
        # The scheduler's filter, the scheduler's own claim on its host
        # state and the compute host's NUMA claim chose the same pCPU,
        # which is the one libvirt got.
        # A loop, not cases: one answer, seen by each of its three callers.
        for caller in ('numa_topology_filter.py', 'host_manager.py',
                       'claims.py'):
            self.assertEqual([{emulator}], self.answers(caller), caller)
        # Placement is unchanged: vCPUs + 1.
        self.assertEqual(2, self.allocation(server['id'], HOST)['PCPU'])

    def test_avoid_with_only_a_sibling_left_is_no_valid_host(self) -> None:
        # Six dedicated vCPUs take three whole cores: one core is left,
        # two pCPUs, which placement sees as room for vCPU + emulator.
        self.boot(self.flavor(vcpus=6, hw__cpu_policy='dedicated'))
        self.assertEqual(6, len(self.pinned(HOST)))
        self.flags(emulator_pcpu_siblings='avoid', group='emulator_threads')
        del self.fits[:]
        server = self.boot(self.isolate, expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        # The scheduler refused the host: no compute claim was tried (no
        # claim failure, no reschedule), nothing is held in placement.
        # EmulatorThreadsFilter, when enabled, refuses it before
        # NUMATopologyFilter is asked.
        self.assertEqual(
            [] if 'EmulatorThreadsFilter' in self.ADDITIONAL_FILTERS
            else [None], self.answers('numa_topology_filter.py'))
        self.assertEqual([], self.answers('claims.py'))
        self.assertEqual({}, self.allocation(server['id'], HOST))
        # Nova's choice fits the same host: on the vCPU's sibling.
        self.flags(emulator_pcpu_siblings='allow', group='emulator_threads')
        vcpu_pcpu, emulator = self.pins(self.boot(self.isolate))
        self.assertEqual(self.core_of(vcpu_pcpu), {vcpu_pcpu, emulator})



class NovaFilterAloneTest(EmulatorPCPUSiblingsTest):
    """The same with ``NUMATopologyFilter`` alone.

    Nova's own fitter, through the seam, is enough for the scheduler to
    know.
    """

    ADDITIONAL_FILTERS = ['NUMATopologyFilter']
