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

"""Flavor extra specs and image properties -> a validated CPU request.

(Contract only: the parser is being written. ``parse_request`` must
return a ``CPURequest`` or raise an ``exception.Invalid`` subclass.)
"""

import dataclasses
from collections.abc import Mapping

from nova_emulator_threads.objects import fields


#: Our flavor extra spec, and Nova's name for it (accepted as an alias).
EMULATOR_THREADS_KEY = 'hw:cpu_emulator_threads'
EMULATOR_THREADS_ALIAS = 'hw:emulator_threads_policy'


@dataclasses.dataclass(frozen=True, slots=True)
class CPURequest:
    """What a flavor (plus image) asks of the host's CPUs and memory.

    Mirrors what ``nova.virt.hardware.numa_get_constraints`` derives, as
    plain values.
    """

    vcpus: int
    memory_mb: int
    #: None (unset), 'shared', 'dedicated' or 'mixed'; an explicit
    #: ``resources:PCPU`` makes it 'dedicated', ``resources:VCPU`` 'shared'.
    cpu_policy: str | None = None
    #: None, 'prefer', 'isolate' or 'require' (also from the
    #: HW_CPU_HYPERTHREADING trait, as Nova does).
    cpu_thread_policy: str | None = None
    #: None, 'share' or 'isolate'.
    emulator_threads_policy: str | None = None
    #: vCPUs that are pinned: all under 'dedicated', the dedicated or
    #: realtime mask under 'mixed', none otherwise.
    dedicated_cpus: frozenset[int] = frozenset()
    #: vCPUs with a realtime scheduler (hw:cpu_realtime + mask).
    realtime_cpus: frozenset[int] = frozenset()
    #: hw:numa_nodes, or None.
    numa_nodes: int | None = None
    #: hw:numa_cpus.N per guest node, or None.
    numa_cpus: tuple[frozenset[int], ...] | None = None
    #: hw:numa_mem.N (MiB) per guest node, or None.
    numa_mem: tuple[int, ...] | None = None
    #: hw:mem_page_size: KiB, or MEMPAGES_SMALL/LARGE/ANY, or None.
    pagesize: int | None = None

    @property
    def needs_numa_topology(self) -> bool:
        """Whether Nova gives this guest a NUMA topology (and pins it)."""
        return bool(self.numa_nodes or self.pagesize or self.cpu_policy in (
            fields.CPUAllocationPolicy.DEDICATED,
            fields.CPUAllocationPolicy.MIXED))


def parse_request(
    vcpus: int,
    memory_mb: int,
    extra_specs: Mapping[str, str] | None = None,
    image_props: Mapping[str, object] | None = None,
) -> CPURequest:
    raise NotImplementedError('being written')
