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

"""The guest NUMA layout and page size a flavor (and image) asks for.

Nova's ``_get_numa_node_count_constraint``, ``_get_numa_pagesize_constraint``,
``_get_numa_cpu_constraint``, ``_get_numa_mem_constraint`` and the checks of
``_get_numa_topology_auto`` / ``_get_numa_topology_manual``, as plain
values. ``cpu_request.parse_request`` is the caller.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from nova_emulator_threads import cpu_request_values as values
from nova_emulator_threads import cpuset
from nova_emulator_threads.objects import fields

NUMA_NODES_KEY = 'hw:numa_nodes'
NUMA_NODES_PROP = 'hw_numa_nodes'
#: Per guest node: ``hw:numa_cpus.0``, ``hw:numa_cpus.1``, ...
NUMA_CPUS_KEY_PREFIX = 'hw:numa_cpus.'
NUMA_MEM_KEY_PREFIX = 'hw:numa_mem.'
#: In the image they are lists, one entry per guest node.
NUMA_CPUS_PROP = 'hw_numa_cpus'
NUMA_MEM_PROP = 'hw_numa_mem'
MEM_PAGE_SIZE_KEY = 'hw:mem_page_size'
MEM_PAGE_SIZE_PROP = 'hw_mem_page_size'

#: Nova reads at most this many ``hw:numa_cpus.N`` / ``hw:numa_mem.N``.
NUMA_NODES_MAX = 128

_T = TypeVar('_T')


@dataclasses.dataclass(frozen=True, slots=True)
class Entry(Generic[_T]):
    """One guest node's entry of a NUMA mapping."""

    key: str
    #: As written (for error messages).
    raw: object
    value: _T


@dataclasses.dataclass(frozen=True, slots=True)
class NUMAMaps:
    """The per-node mappings from the flavor and from the image."""

    flavor_cpus: tuple[Entry[frozenset[int]], ...] | None
    flavor_mem: tuple[Entry[int], ...] | None
    image_cpus: tuple[Entry[frozenset[int]], ...] | None
    image_mem: tuple[Entry[int], ...] | None


def numa_nodes(
    specs: Mapping[str, object], props: Mapping[str, object],
) -> tuple[int | None, str]:
    """The number of guest NUMA nodes asked for, and the key it came from."""
    flavor = specs.get(NUMA_NODES_KEY)
    image = props.get(NUMA_NODES_PROP)
    if flavor is not None:
        nodes = values.parse_int(NUMA_NODES_KEY, flavor, 1)
        # As in Nova, a falsy image value (0) next to the flavor's is
        # ignored.
        if image:
            raise values.conflict(
                NUMA_NODES_PROP, image, NUMA_NODES_KEY, flavor,
                "an image may not override the flavor's NUMA topology")
        return nodes, NUMA_NODES_KEY
    if image is None or image == '':
        return None, NUMA_NODES_KEY
    return values.parse_int(NUMA_NODES_PROP, image, 1), NUMA_NODES_PROP


def page_size(
    specs: Mapping[str, object], props: Mapping[str, object],
) -> int | None:
    """The page size asked for: KiB, a ``MEMPAGES_*`` value, or None.

    The image may choose only where the flavor allows a choice
    (``large`` or ``any``); it may then even choose ``small``, as in Nova.
    """
    flavor = specs.get(MEM_PAGE_SIZE_KEY)
    image = values.image_value(props, MEM_PAGE_SIZE_PROP)
    allowed = ('an image may ask for a page size only when its flavor '
               'sets %s=large or any' % MEM_PAGE_SIZE_KEY)
    if flavor is None:
        if image is not None:
            raise values.invalid(MEM_PAGE_SIZE_PROP, image, allowed)
        return None
    pagesize = values.parse_page_size(MEM_PAGE_SIZE_KEY, flavor)
    if image is None:
        return pagesize
    if pagesize in (fields.MEMPAGES_ANY, fields.MEMPAGES_LARGE):
        return values.parse_page_size(MEM_PAGE_SIZE_PROP, image)
    raise values.conflict(MEM_PAGE_SIZE_PROP, image, MEM_PAGE_SIZE_KEY,
                          flavor, allowed)


def _parse_mem(key: str, value: object) -> int:
    # NOTE: Nova's API rejects a flavor's hw:numa_mem.N below 1 but not an
    # image's; a guest NUMA node without memory is an error either way.
    return values.parse_int(key, value, 1)


def _flavor_map(
    specs: Mapping[str, object], prefix: str,
    parse: Callable[[str, object], _T],
) -> tuple[Entry[_T], ...] | None:
    """``hw:numa_cpus.N`` or ``hw:numa_mem.N`` in node order, or None."""
    found: dict[int, Entry[_T]] = {}
    for key, raw in specs.items():
        if not key.startswith(prefix):
            continue
        suffix = key[len(prefix):]
        if (not (suffix.isascii() and suffix.isdigit()) or
                len(suffix) > len(str(NUMA_NODES_MAX)) or
                str(int(suffix)) != suffix or
                int(suffix) >= NUMA_NODES_MAX):
            raise values.invalid(
                key, raw, 'the guest NUMA node after %r must be a number '
                'from 0 to %d' % (prefix, NUMA_NODES_MAX - 1))
        found[int(suffix)] = Entry(key, raw, parse(key, raw))
    if not found:
        return None
    # NOTE: Nova stops reading at the first missing node and ignores what
    # follows; a key that is silently ignored is an error here.
    for node in range(len(found)):
        if node not in found:
            last = found[max(found)]
            raise values.invalid(
                last.key, last.raw, '%s%d is missing: guest NUMA nodes are '
                'numbered from 0 without gaps' % (prefix, node))
    return tuple(found[node] for node in range(len(found)))


def _image_map(
    props: Mapping[str, object], prop: str,
    parse: Callable[[str, object], _T],
) -> tuple[Entry[_T], ...] | None:
    """``hw_numa_cpus`` or ``hw_numa_mem``: one entry per node, or None."""
    raw = props.get(prop)
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)):
        raise values.invalid(prop, raw, 'must be a list with one entry per '
                             'guest NUMA node')
    return tuple(Entry(prop, item, parse(prop, item)) for item in raw)


def numa_maps(
    specs: Mapping[str, object], props: Mapping[str, object],
) -> NUMAMaps:
    """Parse every per-node mapping, so that a malformed one is an error.

    Nova parses them only when the guest gets a NUMA topology.
    """
    return NUMAMaps(
        flavor_cpus=_flavor_map(specs, NUMA_CPUS_KEY_PREFIX,
                                values.parse_cpus),
        flavor_mem=_flavor_map(specs, NUMA_MEM_KEY_PREFIX, _parse_mem),
        image_cpus=_image_map(props, NUMA_CPUS_PROP, values.parse_cpus),
        image_mem=_image_map(props, NUMA_MEM_PROP, _parse_mem))


def _pick(
    flavor: tuple[Entry[_T], ...] | None,
    image: tuple[Entry[_T], ...] | None,
) -> tuple[Entry[_T], ...] | None:
    """The flavor's mapping or the image's, never both."""
    if flavor is None:
        return image
    if image is not None:
        raise values.conflict(
            image[0].key, [entry.raw for entry in image], flavor[0].key,
            flavor[0].raw, "an image may not override the flavor's NUMA "
            "topology")
    return flavor


def _check_length(entries: Sequence[Entry[_T]], nodes: int) -> None:
    if len(entries) != nodes:
        last = entries[-1]
        raise values.invalid(last.key, last.raw, 'the guest has %d NUMA '
                             'node(s) and needs one entry for each' % nodes)


def numa_layout(
    maps: NUMAMaps, vcpus: int, memory_mb: int, nodes: int, nodes_key: str,
) -> tuple[tuple[frozenset[int], ...] | None, tuple[int, ...] | None]:
    """Check the guest NUMA layout, for a guest that gets a topology.

    :returns: the vCPUs and memory (MiB) of each node for a manual layout,
        or (None, None) for Nova's automatic one (consecutive vCPUs, memory
        split evenly)
    """
    cpu_map = _pick(maps.flavor_cpus, maps.image_cpus)
    mem_map = _pick(maps.flavor_mem, maps.image_mem)

    if cpu_map is None and mem_map is None:
        if vcpus % nodes or memory_mb % nodes:
            raise values.invalid(
                nodes_key, nodes, "must divide the flavor's %d vCPUs and %d "
                'MiB evenly, or give %sN and %sN for every node'
                % (vcpus, memory_mb, NUMA_CPUS_KEY_PREFIX,
                   NUMA_MEM_KEY_PREFIX))
        return None, None
    if cpu_map is None or mem_map is None:
        given = (cpu_map or mem_map or ())[0]
        missing = (NUMA_CPUS_KEY_PREFIX if cpu_map is None
                   else NUMA_MEM_KEY_PREFIX)
        raise values.invalid(given.key, given.raw, 'needs %sN (or the '
                             'image property) for every guest NUMA node too'
                             % missing)
    _check_length(cpu_map, nodes)
    _check_length(mem_map, nodes)

    unassigned = set(range(vcpus))
    for entry in cpu_map:
        for cpu in sorted(entry.value):
            if cpu >= vcpus:
                raise values.invalid(
                    entry.key, entry.raw, "vCPU %d is not one of the "
                    "flavor's vCPUs 0-%d" % (cpu, vcpus - 1))
            if cpu not in unassigned:
                raise values.invalid(
                    entry.key, entry.raw, 'vCPU %d is already in another '
                    'guest NUMA node' % cpu)
            unassigned.remove(cpu)
    if unassigned:
        raise values.invalid(
            cpu_map[-1].key, cpu_map[-1].raw, 'every vCPU must be in a '
            'guest NUMA node, and vCPU(s) %s are not'
            % cpuset.format_cpu_spec(unassigned))
    total = sum(entry.value for entry in mem_map)
    if total != memory_mb:
        raise values.invalid(
            mem_map[-1].key, mem_map[-1].raw, "the guest NUMA nodes' memory "
            "adds up to %d MiB, not the flavor's %d MiB" % (total, memory_mb))
    return (tuple(entry.value for entry in cpu_map),
            tuple(entry.value for entry in mem_map))
