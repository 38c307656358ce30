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


"""What the audit reports: findings, with a severity and one sentence."""

import dataclasses

from nova_emulator_threads import cpuset

#: A thread runs, or is placed to run, where it harms a guest now.
ERROR = 'error'
#: A thread may harm a guest, or a restart will change the placement.
WARNING = 'warning'

# The checks, by the code a finding carries (the JSON output's ``code``,
# which scripts read: keep them stable).
#: Emulator threads may run on a pCPU that runs one of the guest's vCPUs.
EMULATOR_ON_VCPU = 'emulator-on-vcpu-pcpu'
#: Emulator threads confined to isolated CPUs (isolcpus), where the
#: kernel does not balance them: they pile onto the lowest one.
EMULATOR_ON_ISOLATED = 'emulator-on-isolated-cpus'
#: Emulator threads run on an SMT sibling of a pCPU that runs one of the
#: guest's vCPUs (the two hyperthreads share the core).
EMULATOR_ON_VCPU_SIBLING = 'emulator-on-vcpu-sibling'
#: A vhost worker of the guest may run on one of its vCPUs' pCPUs.
VHOST_ON_VCPU = 'vhost-on-vcpu-pcpu'
#: Threads of the guest may run on a pCPU pinned to another guest's vCPU.
ON_OTHER_GUEST = 'emulator-on-other-guest-pcpu'
#: The pins contradict the policy in the guest's flavor.
NOVA_POLICY = 'nova-policy-mismatch'
#: The guest's flavor could not be checked (metadata missing or invalid).
NOVA_UNCHECKED = 'nova-policy-unchecked'
#: The live pins differ from the persistent definition.
LIVE_CONFIG = 'live-config-differ'
#: A thread runs outside the pins libvirt was asked for.
OUTSIDE_PIN = 'thread-outside-pin'


@dataclasses.dataclass(frozen=True)
class Finding:
    severity: str
    #: stable identifier of the check (the JSON output's key).
    code: str
    domain: str
    #: one sentence: what, where, and why it matters.
    message: str
    #: whether moving the guest's emulator (and I/O) threads fixes it.
    fixable_by_pin: bool = False


def fmt(cpus: frozenset[int] | set[int] | None) -> str:
    """CPU ids as a range string; ``none`` for an empty set."""
    return cpuset.format_cpu_spec(cpus or ()) or 'none'


def pcpus(cpus: frozenset[int] | set[int]) -> str:
    """``pCPU 1`` or ``pCPUs 1-3``."""
    return '%s %s' % ('pCPU' if len(cpus) == 1 else 'pCPUs', fmt(cpus))
