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
SEVERITIES = (ERROR, WARNING)


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
