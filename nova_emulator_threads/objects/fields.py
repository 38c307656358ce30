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

"""Enums and fields of the emulator-threads data model.

At run time the data model is carried by Nova's own versioned objects:
``InstanceNUMATopology.emulator_threads_policy`` (a
``nova.objects.fields.CPUEmulatorThreadsPolicyField``) and
``InstanceNUMACell.cpuset_reserved``. The engine, the libvirt builder and
the operator tools work on plain values; these enums name those values,
and they are Nova's values, in Nova's order (a unit test compares them),
so whatever this package writes into Nova's objects is valid there.
"""


class BaseEnum:
    """An enum of strings: its values, in order, are the class's ``ALL``."""

    ALL: tuple[str, ...] = ()


class CPUEmulatorThreadsPolicy(BaseEnum):
    """Where a guest's emulator threads (and I/O threads) run."""

    # share (the default): the emulator threads float over
    # '[compute] cpu_shared_set' when it is set, else over the pCPUs of the
    # guest's own vCPUs.
    SHARE = 'share'
    # isolate: the emulator threads run on one extra dedicated pCPU,
    # reserved for this guest on the host cell of guest cell 0.
    ISOLATE = 'isolate'

    ALL = (SHARE, ISOLATE)


class SharedPoolAffinity(BaseEnum):
    """``[emulator_threads] shared_pool_affinity``: where in the shared pool
    the emulator threads of a ``share`` guest run. Not a Nova value.
    """

    # any (the default): the whole '[compute] cpu_shared_set', as Nova.
    ANY = 'any'
    # numa: the shared CPUs of the host cells the guest's cells landed on.
    NUMA = 'numa'

    ALL = (ANY, NUMA)


class CPUAllocationPolicy(BaseEnum):
    """``hw:cpu_policy``: whether vCPUs are pinned."""

    # every vCPU gets its own pCPU from '[compute] cpu_dedicated_set'.
    DEDICATED = 'dedicated'
    # no pinning: vCPUs float over '[compute] cpu_shared_set'.
    SHARED = 'shared'
    # the vCPUs in 'hw:cpu_dedicated_mask' are pinned, the rest float.
    MIXED = 'mixed'

    # Nova's order: the object hash (and so version checks against Nova's
    # objects) depends on it.
    ALL = (DEDICATED, SHARED, MIXED)


class CPUThreadAllocationPolicy(BaseEnum):
    """``hw:cpu_thread_policy``: how pinned vCPUs use SMT siblings."""

    # prefer siblings, accept any free pCPU (the default).
    PREFER = 'prefer'
    # every pinned vCPU's core must be used by no one else.
    ISOLATE = 'isolate'
    # vCPUs must be placed on siblings.
    REQUIRE = 'require'

    ALL = (PREFER, ISOLATE, REQUIRE)


#: The CPU policies under which vCPUs (all, or those of
#: ``hw:cpu_dedicated_mask``) are pinned to pCPUs of their own.
PINNED_CPU_POLICIES = (
    CPUAllocationPolicy.DEDICATED,
    CPUAllocationPolicy.MIXED)

#: ``InstanceNUMACell.pagesize`` values that are not a size in KiB (Nova's
#: ``nova.virt.hardware.MEMPAGES_*``): ``hw:mem_page_size`` small, large
#: and any.
MEMPAGES_SMALL = -1
MEMPAGES_LARGE = -2
MEMPAGES_ANY = -3


class EmulatorPCPUSiblings(BaseEnum):
    """``[emulator_threads] emulator_pcpu_siblings``.

    Whether a guest's isolated emulator pCPU may be an SMT sibling of one
    of its vCPUs' pCPUs. Not a Nova value.
    """

    # allow (the default): Nova's choice, the first free pCPU after the
    # vCPUs are pinned, which is often the other thread of a vCPU's core.
    ALLOW = 'allow'
    # avoid: never on a core that runs one of the guest's vCPUs.
    AVOID = 'avoid'

    ALL = (ALLOW, AVOID)
