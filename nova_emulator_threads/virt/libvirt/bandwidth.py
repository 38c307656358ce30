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

"""The CFS bandwidth cap of a guest's emulator threads.

``[emulator_threads] shared_pool_quota`` caps each ``share`` guest's
emulator threads at what ``shared_pool_vcpus`` accounted for them in the
shared pool, written as ``<emulator_period>``/``<emulator_quota>`` in the
guest's ``<cputune>`` (``cputune`` writes and reads the elements).
"""

import dataclasses
import fractions
import math

from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields

#: CFS period of the emulator cgroup under ``shared_pool_quota``, in
#: microseconds: the kernel's default period (100 ms), so the cap is
#: enforced at the granularity every other cgroup of the host uses.
EMULATOR_PERIOD_US = 100000
#: Bounds libvirt accepts for ``<emulator_period>`` and ``<emulator_quota>``
#: (``virDomainDefCputuneValidate``; the kernel's own CFS limits): a period
#: of 1 ms to 1 s, a quota of at least 1 ms and at most 2^44 - 1 us.
MIN_EMULATOR_PERIOD_US = 1000
MAX_EMULATOR_PERIOD_US = 1000000
MIN_EMULATOR_QUOTA_US = 1000
MAX_EMULATOR_QUOTA_US = 17592186044415


@dataclasses.dataclass(frozen=True, slots=True)
class EmulatorBandwidth:
    """A CFS cap on a guest's emulator threads: ``quota`` us per ``period``.

    libvirt writes it to the guest's emulator cgroup (``cpu.cfs_period_us``
    and ``cpu.cfs_quota_us`` under cgroup v1, ``cpu.max`` under v2).
    """

    period: int
    quota: int


def emulator_bandwidth(
    policy: str | None,
    shared_pool_vcpus: int,
    cpu_allocation_ratio: float,
    period: int = EMULATOR_PERIOD_US,
) -> EmulatorBandwidth | None:
    """The CFS cap ``shared_pool_quota`` puts on a guest's emulator threads.

    A ``share`` guest was accounted ``shared_pool_vcpus`` VCPU of the
    shared pool, and one VCPU of that pool is ``1 / cpu_allocation_ratio``
    of a pCPU (placement's inventory is shared pCPUs x ratio), so the
    emulator threads may use ``shared_pool_vcpus / cpu_allocation_ratio``
    pCPUs: ``quota = period * shared_pool_vcpus / cpu_allocation_ratio``.
    The quota is rounded up to the microsecond (the cap never grants less
    than was accounted) and raised to libvirt's minimum of 1 ms; a quota
    above the period is allowed (more than one pCPU's worth).

    :param policy: the guest's emulator threads policy
    :param shared_pool_vcpus: ``[emulator_threads] shared_pool_vcpus``
    :param cpu_allocation_ratio: the host's effective
        ``[DEFAULT] cpu_allocation_ratio``
    :param period: the CFS period in microseconds
    :raises: Invalid naming the value at fault
    :returns: the cap, or None for guests that are not capped (not
        ``share``, or nothing accounted)
    """
    if (isinstance(shared_pool_vcpus, bool) or
            not isinstance(shared_pool_vcpus, int) or shared_pool_vcpus < 0):
        raise exception.Invalid(
            reason='[emulator_threads] shared_pool_vcpus=%r is not allowed; '
                   'expected an integer of at least 0' % (shared_pool_vcpus,))
    if not (cpu_allocation_ratio > 0):
        raise exception.Invalid(
            reason='cpu_allocation_ratio=%r is not allowed; expected a '
                   'number above 0' % (cpu_allocation_ratio,))
    if not (MIN_EMULATOR_PERIOD_US <= period <= MAX_EMULATOR_PERIOD_US):
        raise exception.Invalid(
            reason='emulator_period=%r is not allowed; libvirt expects %d '
                   'to %d microseconds' % (period, MIN_EMULATOR_PERIOD_US,
                                           MAX_EMULATOR_PERIOD_US))
    if (policy != fields.CPUEmulatorThreadsPolicy.SHARE or
            not shared_pool_vcpus):
        return None
    # Exact rational arithmetic: float division would round 100000 * 3 / 3
    # the wrong way for some ratios.
    ratio = fractions.Fraction(cpu_allocation_ratio)
    quota = math.ceil(period * shared_pool_vcpus / ratio)
    quota = min(max(quota, MIN_EMULATOR_QUOTA_US), MAX_EMULATOR_QUOTA_US)
    return EmulatorBandwidth(period=period, quota=quota)
