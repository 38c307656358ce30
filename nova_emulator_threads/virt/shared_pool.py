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

"""Whether a host has the shared pool a guest's emulator threads need.

A guest with emulator threads policy ``share`` and realtime vCPUs can only
run on a host with ``[compute] cpu_shared_set``: its emulator threads must
not share pCPUs with realtime vCPUs, and without a shared set ``share``
would put them there. Nova's libvirt driver refuses to build such a guest
(``_get_guest_memory_backing_config``), but only at spawn, after the
scheduler chose the host: the guest is rescheduled from host to host until
the retries run out. ``missing_shared_pool`` makes the same decision on
the scheduler's data, so those hosts are never chosen. A guest whose every
vCPU is realtime under ``share`` is the common case.

Pure: plain sets in, a sentence or None out.
"""

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from nova_emulator_threads import cpuset
from nova_emulator_threads.objects import fields


def shared_pool_cpus(
        cells: Iterable[tuple[AbstractSet[int], AbstractSet[int]]],
) -> frozenset[int]:
    """The CPUs of a host's shared pool, from its NUMA cells.

    A cell's ``cpuset`` is ``[compute] cpu_shared_set`` on that cell, its
    ``pcpuset`` ``cpu_dedicated_set``. Without either option Nova reports
    every CPU in both (the legacy layout): there is no shared pool then,
    which is why CPUs in both sets do not count.

    :param cells: ``(cpuset, pcpuset)`` of each host cell
    :returns: the shared CPUs; empty when the host has no shared pool
    """
    pool: frozenset[int] = frozenset()
    for shared, dedicated in cells:
        pool |= frozenset(shared) - frozenset(dedicated)
    return pool


def missing_shared_pool(
    emulator_threads_policy: str | None,
    realtime_cpus: AbstractSet[int],
    pool: AbstractSet[int],
) -> str | None:
    """Why a host cannot run the guest's emulator threads, or None.

    :param emulator_threads_policy: the guest's policy
    :param realtime_cpus: its realtime vCPUs (``hw:cpu_realtime_mask``)
    :param pool: the host's shared CPUs (``shared_pool_cpus``)
    :returns: a sentence for the scheduler's log when the guest has
        realtime vCPUs under ``share`` and the host has no shared pool;
        None when the host can run it
    """
    if (emulator_threads_policy != fields.CPUEmulatorThreadsPolicy.SHARE or
            not realtime_cpus or pool):
        return None
    return ("the instance has realtime vCPUs %s and emulator threads policy "
            "'share', which needs [compute] cpu_shared_set, and the host "
            "has no shared CPUs" % cpuset.format_cpu_spec(
                frozenset(realtime_cpus)))


def pool_capacity(pool: AbstractSet[int],
                  cpu_allocation_ratio: float) -> float:
    """The ``VCPU`` placement counts in a host's shared pool.

    Nova reports the shared CPUs as the ``VCPU`` inventory, with
    ``cpu_allocation_ratio``; placement lets allocations reach ``total x
    allocation_ratio`` (``reserved_host_cpus`` left at 0).

    :param pool: the host's shared CPUs
    :param cpu_allocation_ratio: the ``VCPU`` inventory's ratio
    :returns: how many ``VCPU`` fit in the pool
    """
    return len(pool) * cpu_allocation_ratio


def guests_in_pool(pool: AbstractSet[int], cpu_allocation_ratio: float,
                   vcpus_per_guest: int) -> int | None:
    """How many guests the pool has room for, each claiming
    ``vcpus_per_guest`` ``VCPU``; None when they claim none (no limit).
    """
    if vcpus_per_guest <= 0:
        return None
    return int(pool_capacity(pool, cpu_allocation_ratio) // vcpus_per_guest)
