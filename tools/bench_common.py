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

"""What the benchmarks feed to Nova's code and to ours, built one way.

The hosts and flavors of ``tools/bench.py`` and ``tools/bench_scheduler.py``,
Nova's objects built from ours (and ours holding Nova's very sets), what
both fitters decide, and the plain tables they print. The unit tests have
their own Nova reference (``tests/unit/virt/nova_reference.py``); the
tools import no test code.
"""

import warnings
from collections.abc import Sequence
from typing import Any

from lxml import etree

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import nova.conf  # noqa: F401  (registers the options Nova reads)
    from nova import objects
    from nova.virt import hardware as nova_hardware

from nova_emulator_threads.virt import nova_objects
from nova_emulator_threads.virt import topology

objects.register_all()

ISOLATE = {'hw:cpu_policy': 'dedicated',
           'hw:emulator_threads_policy': 'isolate'}
SHARE = {'hw:cpu_policy': 'dedicated', 'hw:emulator_threads_policy': 'share'}
TWO_NODES = {'hw:numa_nodes': '2'}
FOUR_NODES = {'hw:numa_nodes': '4'}


# -- hosts and guests, ours and Nova's --------------------------------------


def caps_xml(cells: int, cores: int, threads: int,
             memory_mib: int = 65536) -> str:
    """``virsh capabilities`` of a host of identical cells.

    CPUs are numbered as Linux numbers them: the first thread of every
    core, cell after cell, then the second threads.
    """
    root = etree.Element('capabilities')
    host = etree.SubElement(root, 'host')
    cells_el = etree.SubElement(etree.SubElement(host, 'topology'), 'cells',
                                num=str(cells))
    for cell in range(cells):
        cell_el = etree.SubElement(cells_el, 'cell', id=str(cell))
        etree.SubElement(cell_el, 'memory', unit='KiB').text = str(
            memory_mib * 1024)
        etree.SubElement(cell_el, 'pages', unit='KiB', size='4').text = str(
            memory_mib * 256)
        etree.SubElement(cell_el, 'pages', unit='KiB',
                         size='2048').text = '0'
        cpus_el = etree.SubElement(cell_el, 'cpus', num=str(cores * threads))
        for core in range(cores):
            first = cell * cores + core
            sibs = [thread * cells * cores + first
                    for thread in range(threads)]
            for cpu in sibs:
                etree.SubElement(
                    cpus_el, 'cpu', id=str(cpu), socket_id=str(cell),
                    die_id='0', core_id=str(core),
                    siblings=','.join(map(str, sibs)))
    return etree.tostring(root, encoding='unicode')


def nova_flavor(vcpus: int, memory_mb: int,
                extra_specs: dict[str, str]) -> tuple[Any, Any]:
    """Nova's flavor and an image without properties."""
    flavor = objects.Flavor(vcpus=vcpus, memory_mb=memory_mb, root_gb=20,
                            ephemeral_gb=0, swap=0, name='bench',
                            extra_specs=dict(extra_specs))
    return flavor, objects.ImageMeta.from_dict({'properties': {}})


def nova_instance(vcpus: int, memory_mb: int,
                  extra_specs: dict[str, str]) -> Any:
    """Nova's guest topology of a flavor, built by Nova."""
    return nova_hardware.numa_get_constraints(
        *nova_flavor(vcpus, memory_mb, extra_specs))


def summary(fitted: Any) -> list[tuple[Any, ...]] | None:
    """What both fitters decide.

    Per guest cell: the host cell, the pins, the emulator pCPUs and the
    page size.
    """
    if fitted is None:
        return None
    if isinstance(fitted, topology.InstanceTopology):
        return [(cell.id, dict(cell.cpu_pinning or {}),
                 set(cell.cpuset_reserved or ()), cell.pagesize)
                for cell in fitted.cells]
    return [(cell.id,
             dict(cell.cpu_pinning if 'cpu_pinning_raw' in cell else {}),
             set(cell.cpuset_reserved if 'cpuset_reserved' in cell and
                 cell.cpuset_reserved else ()),
             cell.pagesize if 'pagesize' in cell else None)
            for cell in fitted.cells]


def nova_host(host: topology.HostTopology) -> Any:
    """Nova's ``NUMATopology`` of one of our hosts (cells, siblings and
    pages in our order: Nova's packing walks them in that order).
    """
    return objects.NUMATopology(cells=[
        objects.NUMACell(
            id=cell.id, cpuset=set(cell.cpuset), pcpuset=set(cell.pcpuset),
            memory=cell.memory, cpu_usage=cell.cpu_usage,
            memory_usage=cell.memory_usage,
            pinned_cpus=set(cell.pinned_cpus),
            siblings=[set(sib) for sib in cell.siblings],
            mempages=[objects.NUMAPagesTopology(
                size_kb=p.size_kb, total=p.total, used=p.used,
                reserved=p.reserved) for p in cell.mempages],
            socket=cell.socket)
        for cell in host.cells])


def ours_from_nova(nova: Any) -> topology.HostTopology:
    """Our host, holding the very same set objects as Nova's (the view the
    scheduler filter reads).
    """
    return nova_objects.host_view_of_object(nova)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                 right: int = 1) -> str:
    """A plain table.

    The first ``right`` columns left-aligned, the rest right-aligned.
    """
    table = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return '  '.join(
            cell.ljust(width) if index < right else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths))).rstrip()

    return '\n'.join([line(table[0]), line(['-' * w for w in widths])] +
                     [line(row) for row in table[1:]])
