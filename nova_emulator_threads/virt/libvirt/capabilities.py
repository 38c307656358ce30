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

"""Read a host's NUMA topology from libvirt's capabilities XML.

The result is what Nova's libvirt driver (``_get_host_numa_topology``)
reports for the same XML and the same ``[compute] cpu_dedicated_set`` /
``cpu_shared_set``, down to the order of the sibling sets and of the CPUs
inside them: Nova's packing walks them in that order, so a different
order would give different pins.
"""

import typing

from lxml import etree

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads import xmlutils
from nova_emulator_threads.virt import topology

#: The largest capabilities document read.
MAX_CAPS_BYTES = xmlutils.MAX_XML_BYTES

DEDICATED_SET_KEY = '[compute] cpu_dedicated_set'
SHARED_SET_KEY = '[compute] cpu_shared_set'
PINNED_KEY = 'pinned'

#: libvirt's numbers are 64-bit unsigned: at most 20 digits. Longer digit
#: strings are not numbers libvirt wrote (and int() refuses more than
#: 4300 digits with a ValueError).
MAX_DIGITS = 20


def parse_xml(text: str | bytes, source: str) -> etree._Element:
    """Parse untrusted XML into an element, or raise our exception."""
    def invalid(reason: str) -> exception.EmulatorThreadsException:
        return exception.InvalidHostCapabilities(source=source,
                                                 reason=reason)
    return xmlutils.parse_untrusted(text, invalid)


def _int_attr(element: etree._Element, name: str, source: str) -> int:
    value = element.get(name)
    text = element.text if name == '#text' else value
    if text is None or not _is_number(text):
        raise exception.InvalidHostCapabilities(
            source=source, reason='<%s> has %s %r, expected a non-negative '
            'integer of at most %d digits' % (
                element.tag, 'text' if name == '#text'
                else "attribute '%s'" % name, text, MAX_DIGITS))
    return int(text)


def _is_number(text: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts '²' and '١', which
    # int() refuses or reads as another number.
    text = text.strip()
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS


def _nova_cpu_set(spec: str, key: str, source: str | None = None) -> set[int]:
    """A CPU range string as a set iterating in Nova's order.

    :param source: for a value read from the capabilities XML, where it
        came from (its errors are then about the XML)
    """
    try:
        return cpuset.nova_ordered_cpu_set(spec, key)
    except exception.InvalidCPUSpec as exc:
        if source is None:
            raise
        raise exception.InvalidHostCapabilities(
            source=source, reason=str(exc).rstrip('.')) from None


def _cells(root: etree._Element, source: str) -> list[etree._Element]:
    host = root if root.tag == 'host' else root.find('host')
    if root.tag not in ('capabilities', 'host') or host is None:
        raise exception.InvalidHostCapabilities(
            source=source, reason='expected <capabilities> with a <host> '
            'element, got <%s>' % root.tag)
    cells = host.findall('topology/cells/cell')
    if not cells:
        raise exception.InvalidHostCapabilities(
            source=source, reason='<host> has no <topology><cells><cell> '
            'elements, so the host has no NUMA topology to plan on')
    return cells


#: A cell as read from the XML: id, memory in KiB, its pages, and its
#: CPUs as (id, siblings, socket).
_ParsedCPU = tuple[int, set[int], int | None]
_ParsedCell = tuple[int, int, tuple[topology.MemPages, ...],
                    list[_ParsedCPU]]


def host_topology_from_caps(
    caps_xml: str | bytes,
    cpu_dedicated_set: str = '',
    cpu_shared_set: str = '',
    pinned: str = '',
    source: str = 'XML',
) -> topology.HostTopology:
    """Build a host topology from ``virsh capabilities`` output.

    :param caps_xml: the capabilities XML
    :param cpu_dedicated_set: ``[compute] cpu_dedicated_set`` (range string)
    :param cpu_shared_set: ``[compute] cpu_shared_set`` (range string)
    :param pinned: pCPUs already pinned by guests on this host
    :param source: where the XML came from, for error messages
    :raises: InvalidHostCapabilities, InvalidCPUSpec, Invalid
    """
    dedicated = _nova_cpu_set(cpu_dedicated_set, DEDICATED_SET_KEY)
    shared = _nova_cpu_set(cpu_shared_set, SHARED_SET_KEY)
    for key, option, named in ((DEDICATED_SET_KEY, cpu_dedicated_set,
                                dedicated),
                               (SHARED_SET_KEY, cpu_shared_set, shared)):
        if option and not named:
            # Nova: an empty option is unset; one naming no CPU is refused.
            cpuset.parse_cpu_set_option(option, key)
    already_pinned = _nova_cpu_set(pinned, PINNED_KEY)
    root = parse_xml(caps_xml, source)
    parsed: list[_ParsedCell] = []
    online: set[int] = set()
    cell_ids: set[int] = set()
    for xml_cell in _cells(root, source):
        parsed.append(_parse_cell(xml_cell, source, cell_ids, online))
    _check_sets(dedicated, shared, already_pinned, online)
    avail_shared, avail_dedicated = _available_cpus(dedicated, shared,
                                                    online)
    cells = tuple(_host_cell(cell, avail_shared, avail_dedicated,
                             already_pinned) for cell in parsed)
    return topology.HostTopology(cells=cells,
                                 cpu_shared_set=frozenset(shared))


def _parse_cell(xml_cell: typing.Any, source: str, cell_ids: set[int],
                online: set[int]) -> _ParsedCell:
    """One ``<cell>``, checked; its id joins ``cell_ids``, its CPUs
    ``online``.
    """
    cell_id = _int_attr(xml_cell, 'id', source)
    memory_el = xml_cell.find('memory')
    memory_kib = (_int_attr(memory_el, '#text', source)
                  if memory_el is not None else 0)
    pages = tuple(
        topology.MemPages(size_kb=_int_attr(p, 'size', source),
                          total=_int_attr(p, '#text', source))
        for p in xml_cell.findall('pages'))
    if any(page.size_kb == 0 for page in pages):
        # A zero page size would divide by zero when fitting.
        raise exception.InvalidHostCapabilities(
            source=source, reason='cell %d has <pages size="0">, '
            'expected a page size in KiB' % cell_id)
    if cell_id in cell_ids:
        raise exception.InvalidHostCapabilities(
            source=source, reason='cell id %d is listed twice'
            % cell_id)
    cell_ids.add(cell_id)
    cpus = [_parse_cpu(xml_cpu, source, online)
            for xml_cpu in xml_cell.findall('cpus/cpu')]
    return cell_id, memory_kib, pages, cpus


def _parse_cpu(xml_cpu: typing.Any, source: str,
               online: set[int]) -> _ParsedCPU:
    """One ``<cpu>``, checked; its id joins ``online``."""
    cpu_id = _int_attr(xml_cpu, 'id', source)
    if cpu_id > cpuset.MAX_CPU_ID:
        raise exception.InvalidHostCapabilities(
            source=source, reason='CPU id %d is above the maximum '
            '%d' % (cpu_id, cpuset.MAX_CPU_ID))
    if cpu_id in online:
        # One CPU in two cells could be pinned from both.
        raise exception.InvalidHostCapabilities(
            source=source, reason='CPU id %d is listed twice'
            % cpu_id)
    spec = xml_cpu.get('siblings')
    # Older libvirt omits 'siblings': the CPU is its own core.
    cpu_siblings = (_nova_cpu_set(spec, 'siblings', source)
                    if spec is not None else {cpu_id})
    socket_id = xml_cpu.get('socket_id')
    online.add(cpu_id)
    return (cpu_id, cpu_siblings,
            int(socket_id) if socket_id and _is_number(socket_id) else None)


def _available_cpus(dedicated: set[int], shared: set[int],
                    online: set[int]) -> tuple[set[int], set[int]]:
    """The CPUs for unpinned and for pinned guests, by the driver's rules.

    With neither option set every online CPU serves both pinned and
    unpinned guests (legacy mode); with only cpu_dedicated_set there are no
    CPUs for unpinned guests. Online CPUs are added in id order, as the
    driver reads libvirt's CPU map.
    """
    online_cpus = set()
    for cpu_id in sorted(online):
        online_cpus.add(cpu_id)
    if shared:
        avail_shared = shared
    elif dedicated:
        avail_shared = set()
    else:
        avail_shared = online_cpus
    avail_dedicated = dedicated or (set() if shared else avail_shared)
    return avail_shared, avail_dedicated


def _host_cell(cell: _ParsedCell, avail_shared: set[int],
               avail_dedicated: set[int],
               already_pinned: set[int]) -> topology.HostCell:
    """The engine's cell, as Nova's driver reports it."""
    cell_id, memory_kib, pages, cpus = cell
    cpu_ids = {cpu_id for cpu_id, _s, _k in cpus}
    sockets = {socket for _c, _s, socket in cpus}
    # NOTE(nova): the driver's own expression, kept verbatim because
    # the order of this list is part of the answer.
    sibling_sets = sorted(set(x) for x in set(
        tuple(sibs) or () for _c, sibs, _k in cpus))
    usable = cpu_ids & (avail_shared | avail_dedicated)
    sibling_sets = [sib & usable for sib in sibling_sets]
    pcpuset = _ovo_set(cpu_ids & avail_dedicated)
    return topology.HostCell(
        id=cell_id,
        cpuset=_ovo_set(cpu_ids & avail_shared),
        pcpuset=pcpuset,
        memory=memory_kib // 1024,
        siblings=tuple(_ovo_set(sib) for sib in sibling_sets if sib),
        mempages=pages,
        pinned_cpus=_ovo_set(already_pinned & pcpuset),
        socket=sockets.pop() if len(sockets) == 1 else None)


def _ovo_set(values: typing.Iterable[int]) -> frozenset[int]:
    # oslo.versionedobjects coerces a set field by adding the elements one
    # by one to a new set and merging that into a fresh one; do the same
    # so that iteration order matches what Nova's objects hold.
    coerced = set()
    for value in values:
        coerced.add(value)
    return frozenset(coerced)


def _check_sets(dedicated: set[int], shared: set[int],
                pinned: set[int], online: set[int]) -> None:
    for key, cpus in ((DEDICATED_SET_KEY, dedicated),
                      (SHARED_SET_KEY, shared)):
        missing = cpus - online
        if missing:
            raise exception.Invalid(
                'Invalid %s=%r: CPUs %s are not on this host; the host has '
                'CPUs %s.' % (key, cpuset.format_cpu_spec(cpus),
                              cpuset.format_cpu_spec(missing),
                              cpuset.format_cpu_spec(online)))
    overlap = dedicated & shared
    if overlap:
        raise exception.Invalid(
            'Invalid %s=%r: CPUs %s are also in %s=%r; the two sets must '
            'not overlap.' % (DEDICATED_SET_KEY,
                              cpuset.format_cpu_spec(dedicated),
                              cpuset.format_cpu_spec(overlap),
                              SHARED_SET_KEY,
                              cpuset.format_cpu_spec(shared)))
    pinnable = dedicated or (set() if shared else online)
    stray = pinned - pinnable
    if stray:
        raise exception.Invalid(
            'Invalid %s=%r: CPUs %s are not dedicated pCPUs of this host; '
            'only CPUs of %s (%s) can be pinned.' % (
                PINNED_KEY, cpuset.format_cpu_spec(pinned),
                cpuset.format_cpu_spec(stray), DEDICATED_SET_KEY,
                cpuset.format_cpu_spec(pinnable) or 'empty'))
