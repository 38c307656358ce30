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

"""Hypothesis strategies: hosts and flavors for the property tests.

Hosts are built as libvirt capabilities XML (``cases.caps_xml``) and read
by ``host_topology_from_caps``, so the capabilities reader is part of
every example. Flavors are extra specs, as an operator writes them, and go
through ``cpu_request.parse_request``.

Both are drawn with few hypothesis choices (an index into a catalogue of
flavor shapes, one integer per CPU mask): drawing is what costs most in
a property test, and 5,000 examples per property must run in seconds.
"""

import dataclasses
import itertools

from hypothesis import strategies as st

from nova_emulator_threads import cpu_request
from nova_emulator_threads import cpuset
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit.virt import cases

#: Hosts stay at or under this many CPUs, so that thousands of streams
#: that fit guests on up to 16 cells run in seconds.
MAX_HOST_CPUS = 48


# -- hosts -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GeneratedHost:
    caps_xml: str
    dedicated: str
    shared: str
    pinned: str
    host: topology.HostTopology
    limits: hardware.Limits | None

    def __repr__(self) -> str:
        # What a failing example prints: enough to rebuild the host.
        return ('GeneratedHost(cells=%d, dedicated=%r, shared=%r, '
                'pinned=%r, limits=%r, siblings=%r)' % (
                    len(self.host.cells), self.dedicated, self.shared,
                    self.pinned, self.limits,
                    [sorted(map(sorted, c.siblings)) for c in
                     self.host.cells]))


def _mask(cpus: list[int], bits: int) -> list[int]:
    return [cpu for index, cpu in enumerate(cpus) if bits >> index & 1]


@st.composite
def hosts(draw: st.DrawFn) -> GeneratedHost:
    """A host as libvirt reports it, configured and partly filled.

    1 to 16 cells; SMT 1, 2 or 4, numbered the Linux way (thread siblings
    far apart) or consecutively; ``[compute] cpu_dedicated_set`` and
    ``cpu_shared_set`` split, dedicated only, partial, or unset (legacy:
    every CPU serves pinned and unpinned guests); 4 KiB, 2 MiB and 1 GiB
    pages or none; pCPUs already pinned (none, few, many); allocation
    ratios or none.
    """
    # Any count from 1 to 16, the common ones (1, 2, 4) more often.
    ncells = draw(st.sampled_from((1, 2, 2, 4)) | st.integers(1, 16))
    threads = draw(st.sampled_from((1, 2, 4)))
    most = max(1, min(6, MAX_HOST_CPUS // (ncells * threads)))
    # As many cores as the size allows, or fewer.
    cores = draw(st.just(most) | st.integers(1, most))
    linux_numbering = draw(st.booleans())
    mib = draw(st.sampled_from((1024, 2048, 4096)))
    # Uneven cells make the balancing sorts matter.
    uneven = draw(st.booleans())
    memory = [mib * (1 + cell % 2) if uneven else mib
              for cell in range(ncells)]
    pages = None
    if draw(st.booleans()):
        # 4 KiB pages for all of it, 2 MiB pages for an eighth, and a
        # 1 GiB page per 2 GiB.
        pages = [[m * 256, m // 16, m // 2048] for m in memory]
    xml = cases.caps_xml(ncells, cores, threads, linux_numbering, memory,
                         pages)
    cpus = list(range(ncells * cores * threads))
    bits = st.integers(0, (1 << len(cpus)) - 1)
    mode = draw(st.sampled_from(('split', 'dedicated', 'legacy',
                                 'partial')))
    if mode == 'split':
        # A sparse shared set (a quarter or so), the rest dedicated.
        shared = _mask(cpus, draw(bits) & draw(bits))
        dedicated = [cpu for cpu in cpus if cpu not in shared]
    elif mode == 'dedicated':
        shared, dedicated = [], cpus
    elif mode == 'legacy':
        shared, dedicated = [], []
    else:
        dedicated = _mask(cpus, draw(bits) | draw(bits))
        rest = [cpu for cpu in cpus if cpu not in dedicated]
        shared = _mask(rest, draw(bits))
    pinnable = dedicated or ([] if shared else cpus)
    fill = draw(st.sampled_from(('empty', 'empty', 'sparse', 'dense')))
    pinned: list[int] = []
    if fill == 'sparse':
        pinned = _mask(pinnable, draw(bits) & draw(bits) & draw(bits))
    elif fill == 'dense':
        pinned = _mask(pinnable, draw(bits) | draw(bits))
    spec = (cpuset.format_cpu_spec(dedicated),
            cpuset.format_cpu_spec(shared), cpuset.format_cpu_spec(pinned))
    host = capabilities.host_topology_from_caps(xml, *spec)
    limits = draw(st.sampled_from((
        None, None, hardware.Limits(1.0, 1.0), hardware.Limits(4.0, 1.5))))
    return GeneratedHost(xml, *spec, host=host, limits=limits)


# -- flavors -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Flavor:
    vcpus: int
    memory_mb: int
    extra_specs: dict[str, str]

    def request(self) -> cpu_request.CPURequest:
        return cpu_request.parse_request(self.vcpus, self.memory_mb,
                                         self.extra_specs)


_EMULATOR_KEYS = (
    (cpu_request.EMULATOR_THREADS_KEY,),
    (cpu_request.EMULATOR_THREADS_ALIAS,),
    # Both, agreeing.
    (cpu_request.EMULATOR_THREADS_KEY, cpu_request.EMULATOR_THREADS_ALIAS),
)


def _emulator_choices() -> list[dict[str, str]]:
    choices: list[dict[str, str]] = [{}]
    for value in ('share', 'isolate'):
        for keys in _EMULATOR_KEYS:
            choices.append({key: value for key in keys})
    return choices


_THREAD_CHOICES: tuple[dict[str, str], ...] = (
    {}, {'hw:cpu_thread_policy': 'prefer'},
    {'hw:cpu_thread_policy': 'require'},
    {'hw:cpu_thread_policy': 'isolate'},
    # Nova reads a forbidden hyperthreading trait as 'isolate'.
    {'trait:HW_CPU_HYPERTHREADING': 'forbidden'},
)


def _mixed_masks(nodes: int, per_node: int) -> list[str]:
    """Dedicated masks that leave the first vCPU of each guest node
    unpinned and pin the rest, or only the last, of each node.
    """
    masks = []
    for pin_all in (True, False):
        pinned = []
        for node in range(nodes):
            first = node * per_node
            rest = list(range(first + 1, first + per_node))
            pinned += rest if pin_all else rest[-1:]
        masks.append(cpuset.format_cpu_spec(pinned))
    return masks


def flavor_catalogue() -> tuple[Flavor, ...]:
    """Every flavor shape the properties draw from, simplest first.

    Guest NUMA nodes unset or 1 to 4; CPU policy unset, shared, dedicated
    or mixed; 1 to 3 vCPUs per node; emulator threads unset, share or
    isolate under either key or both; every CPU thread policy, also as
    the hyperthreading trait; realtime vCPUs. The page size is drawn
    separately (``flavors``).
    """
    catalogue = []
    for nodes, cpu_policy, per_node, node_mib in itertools.product(
            (None, 1, 2, 3, 4), (None, 'shared', 'dedicated', 'mixed'),
            (1, 2, 3), (256, 1024)):
        count = nodes or 1
        base = {}
        if nodes is not None:
            base['hw:numa_nodes'] = str(nodes)
        if cpu_policy is not None:
            base['hw:cpu_policy'] = cpu_policy
        shape = (count * per_node, count * node_mib)
        if cpu_policy not in ('dedicated', 'mixed'):
            catalogue.append(Flavor(*shape, base))
            continue
        if cpu_policy == 'mixed':
            if per_node < 2:
                continue
            cpu_parts = [{'hw:cpu_dedicated_mask': mask}
                         for mask in _mixed_masks(count, per_node)]
        else:
            cpu_parts = [{}]
            if shape[0] > 1:
                cpu_parts.append({'hw:cpu_realtime': 'yes',
                                  'hw:cpu_realtime_mask': '^0'})
        for emulator, thread, cpu_part in itertools.product(
                _emulator_choices(), _THREAD_CHOICES, cpu_parts):
            catalogue.append(Flavor(*shape, {**base, **emulator, **thread,
                                             **cpu_part}))
    return tuple(catalogue)


CATALOGUE = flavor_catalogue()

#: Page sizes, unset most often (a page size limits where a guest fits).
PAGE_SIZES = (None,) * 6 + ('small', 'large', 'any', '2048', '1GB')


#: The catalogue's flavors with isolated emulator threads.
ISOLATE_CATALOGUE = tuple(
    flavor for flavor in CATALOGUE if 'isolate' in (
        flavor.extra_specs.get(cpu_request.EMULATOR_THREADS_KEY),
        flavor.extra_specs.get(cpu_request.EMULATOR_THREADS_ALIAS)))

# Built once: a strategy over the catalogue's objects would be labelled
# (hashed item by item) every time it is built.
_SHAPE = st.integers(0, len(CATALOGUE) - 1)
_ISOLATE_SHAPE = st.integers(0, len(ISOLATE_CATALOGUE) - 1)
_PAGE_SIZE = st.sampled_from(PAGE_SIZES)


@st.composite
def flavors(draw: st.DrawFn, isolate: bool = False) -> Flavor:
    """A valid flavor from the catalogue, with a page size or none.

    :param isolate: only flavors with isolated emulator threads
    """
    if isolate:
        flavor = ISOLATE_CATALOGUE[draw(_ISOLATE_SHAPE)]
    else:
        flavor = CATALOGUE[draw(_SHAPE)]
    pagesize = draw(_PAGE_SIZE)
    if pagesize is None or not ({'hw:cpu_policy', 'hw:numa_nodes'} &
                                set(flavor.extra_specs)):
        return flavor
    return dataclasses.replace(flavor, extra_specs={
        **flavor.extra_specs, 'hw:mem_page_size': pagesize})
