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

"""What an instance costs beyond its vCPUs, and what placement is asked.

The spec's ``estimate_instance_overhead()`` (gone from Nova 34): with
``isolate`` the emulator threads take one more dedicated pCPU. That single
figure is what ``placement_request`` adds to the CPU claim, so the
scheduler's placement claim and the compute host's NUMA claim (which
reserves ``cpu_request.EMULATOR_THREADS_ISOLATE_PCPUS`` pCPUs) agree.
With ``[emulator_threads] shared_pool_vcpus`` a ``share`` guest's emulator
threads cost ``VCPU`` of the shared pool, the same way.

``placement_request`` gives the CPU resources Nova 34's scheduler asks
placement for (``ResourceRequest.from_request_spec``: explicit
``resources:VCPU|PCPU`` extra specs, then
``_translate_pinning_policies``, then the flavor's vCPUs as ``VCPU`` if
neither class was asked for), with amounts of zero left out as Nova's
``strip_zeros`` does.
"""

import os_resource_classes as orc

from nova_emulator_threads import cpu_request
from nova_emulator_threads.objects import fields


def estimate_instance_overhead(
        request: cpu_request.CPURequest,
        shared_pool_vcpus: int = 0) -> dict[str, int]:
    """Placement resources the instance needs beyond its vCPUs.

    ``shared_pool_vcpus`` (``[emulator_threads] shared_pool_vcpus``) is
    what a ``share`` guest's emulator threads take from the shared pool,
    the host's ``VCPU`` inventory. ``mixed`` guests get it too: their
    emulator threads run in the same pool as their shared vCPUs (Nova
    pins both to ``cpu_shared_set``), and the ``VCPU`` of those vCPUs is
    what the vCPUs use, so the emulator threads' share comes on top.
    Guests without pinned vCPUs have no emulator threads policy and float
    with their vCPUs: nothing is added; nor to explicit ``resources:VCPU``
    or ``resources:PCPU`` amounts, which are the totals the operator
    wants.

    :param request: the validated request (``cpu_request.parse_request``)
    :param shared_pool_vcpus: VCPU each ``share`` guest claims for its
        emulator threads; 0 claims none, as Nova
    :returns: ``{'PCPU': 1}`` for ``isolate``, ``{'VCPU': N}`` for
        ``share`` with N > 0, ``{}`` otherwise
    """
    if (request.emulator_threads_policy ==
            fields.CPUEmulatorThreadsPolicy.ISOLATE):
        return {orc.PCPU: cpu_request.EMULATOR_THREADS_ISOLATE_PCPUS}
    if (shared_pool_vcpus and
            request.cpu_policy in fields.PINNED_CPU_POLICIES and
            # Explicit resources:VCPU/PCPU are totals the operator wrote.
            request.vcpu_resources is None and
            request.pcpu_resources is None and
            request.emulator_threads_policy ==
            fields.CPUEmulatorThreadsPolicy.SHARE):
        return {orc.VCPU: shared_pool_vcpus}
    return {}


def placement_request(request: cpu_request.CPURequest,
                      shared_pool_vcpus: int = 0) -> dict[str, int]:
    """The CPU resources the scheduler asks placement for.

    * dedicated: ``PCPU`` = vCPUs (+ the overhead);
    * mixed: ``VCPU`` = unpinned vCPUs, ``PCPU`` = pinned vCPUs (+ the
      overhead; Nova adds the emulator pCPU for mixed too);
    * otherwise ``VCPU`` = vCPUs, or the explicit ``resources:VCPU``
      amount; an explicit zero (``resources:VCPU=0`` or
      ``resources:PCPU=0``) asks for no CPU at all, as in Nova.

    :param request: the validated request (``cpu_request.parse_request``)
    :param shared_pool_vcpus: see ``estimate_instance_overhead``
    :returns: resource class -> amount, without zero amounts
    """
    if request.cpu_policy in (fields.CPUAllocationPolicy.DEDICATED,
                              fields.CPUAllocationPolicy.MIXED):
        pinned = len(request.dedicated_cpus)
        resources = {orc.VCPU: request.vcpus - pinned, orc.PCPU: pinned}
    elif request.vcpu_resources is not None:
        resources = {orc.VCPU: request.vcpu_resources}
    elif request.pcpu_resources is not None:
        # Only an explicit zero gets here (any other amount makes the
        # policy dedicated); Nova then adds no default VCPU either.
        resources = {orc.PCPU: request.pcpu_resources}
    else:
        resources = {orc.VCPU: request.vcpus}
    for rc, amount in estimate_instance_overhead(
            request, shared_pool_vcpus).items():
        resources[rc] = resources.get(rc, 0) + amount
    return {rc: amount for rc, amount in resources.items() if amount}
