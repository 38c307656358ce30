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

"""Generated hosts and guests for the differential and property tests.

Hosts are generated as libvirt capabilities XML (so the capabilities
reader is part of every case), then given usage: pinned pCPUs, memory and
shared-CPU usage, used huge pages.
"""

import dataclasses
import random

from lxml import etree

from nova_emulator_threads import cpuset
from nova_emulator_threads import data
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import capabilities

PAGE_SIZES = (4, 2048, 1048576)


@dataclasses.dataclass
class Case:
    seed: int
    caps_xml: str
    dedicated: str
    shared: str
    pinned: str
    host: topology.HostTopology
    inst: topology.InstanceTopology
    limits: hardware.Limits | None

    def describe(self) -> str:
        return ('case seed=%d\n  cpu_dedicated_set=%r cpu_shared_set=%r '
                'pinned=%r limits=%r\n  host=%r\n  inst=%r' % (
                    self.seed, self.dedicated, self.shared, self.pinned,
                    self.limits, self.host, self.inst))


def caps_xml(ncells: int, cores: int, threads: int, linux_numbering: bool,
             memory_mib: list[int], pages: list[list[int]] | None) -> str:
    """Capabilities XML for a host of ``ncells`` x ``cores`` x ``threads``."""
    root = etree.Element('capabilities')
    host = etree.SubElement(root, 'host')
    cells_el = etree.SubElement(etree.SubElement(host, 'topology'), 'cells',
                                num=str(ncells))
    total_cores = ncells * cores

    def cpu_id(cell: int, core: int, thread: int) -> int:
        if linux_numbering:
            return thread * total_cores + cell * cores + core
        return (cell * cores + core) * threads + thread

    for cell in range(ncells):
        cell_el = etree.SubElement(cells_el, 'cell', id=str(cell))
        memory = etree.SubElement(cell_el, 'memory', unit='KiB')
        memory.text = str(memory_mib[cell] * 1024)
        for size, total in zip(PAGE_SIZES, pages[cell] if pages else []):
            page = etree.SubElement(cell_el, 'pages', unit='KiB',
                                    size=str(size))
            page.text = str(total)
        cpus_el = etree.SubElement(cell_el, 'cpus', num=str(cores * threads))
        for core in range(cores):
            sibs = [cpu_id(cell, core, t) for t in range(threads)]
            for thread in range(threads):
                etree.SubElement(
                    cpus_el, 'cpu', id=str(cpu_id(cell, core, thread)),
                    socket_id=str(cell), die_id='0', core_id=str(core),
                    siblings=cpuset.format_cpu_spec(sibs)
                    if not linux_numbering else ','.join(map(str, sibs)))
    return etree.tostring(root, encoding='unicode')


def _subset(rng: random.Random, values: list[int], p: float) -> list[int]:
    return [v for v in values if rng.random() < p]


def random_host(rng: random.Random):
    ncells = rng.choice((1, 1, 2, 2, 2, 3, 4, 4, 6, 8))
    cores = rng.randint(1, 10)
    threads = rng.choice((1, 1, 2, 2, 2, 4))
    linux = rng.random() < 0.6
    memory = [rng.choice((1024, 2048, 4096, 8192, 16384)) for _ in
              range(ncells)]
    pages = None
    if rng.random() < 0.4:
        pages = [[m * 256, rng.randint(0, m // 2 // 2), rng.randint(0, 4)]
                 for m in memory]
    xml = caps_xml(ncells, cores, threads, linux, memory, pages)
    all_cpus = list(range(ncells * cores * threads))
    mode = rng.random()
    if mode < 0.45:
        shared = _subset(rng, all_cpus, 0.15)
        dedicated = [c for c in all_cpus if c not in shared]
    elif mode < 0.65:
        shared, dedicated = [], all_cpus
    elif mode < 0.75:
        shared, dedicated = [], []  # legacy: every CPU serves both
    else:
        dedicated = _subset(rng, all_cpus, 0.7)
        shared = _subset(rng, [c for c in all_cpus if c not in dedicated],
                         0.6)
    pinnable = dedicated or ([] if shared else all_cpus)
    pinned = _subset(rng, pinnable, rng.choice((0.0, 0.0, 0.0, 0.2, 0.5,
                                                0.8)))
    spec = (cpuset.format_cpu_spec(dedicated), cpuset.format_cpu_spec(shared),
            cpuset.format_cpu_spec(pinned))
    host = capabilities.host_topology_from_caps(xml, *spec)
    cells = []
    for cell in host.cells:
        mempages = tuple(
            dataclasses.replace(p, used=rng.randint(0, p.total))
            if rng.random() < 0.3 else p for p in cell.mempages)
        cells.append(dataclasses.replace(
            cell, mempages=mempages,
            memory_usage=rng.choice((0, 0, 0, 0, cell.memory // 4,
                                     cell.memory // 2, cell.memory)),
            cpu_usage=rng.randint(0, 2 * len(cell.cpuset) + 1)))
    host = dataclasses.replace(host, cells=tuple(cells))
    return xml, spec, host


def random_instance(rng: random.Random) -> topology.InstanceTopology:
    roll = rng.random()
    if roll < 0.6:
        policy = fields.CPUAllocationPolicy.DEDICATED
    elif roll < 0.75:
        policy = fields.CPUAllocationPolicy.MIXED
    elif roll < 0.85:
        policy = fields.CPUAllocationPolicy.SHARED
    else:
        policy = None
    nodes = rng.choice((1, 1, 1, 2, 2, 3, 4))
    vcpus = nodes * rng.randint(1, 5)
    if policy == fields.CPUAllocationPolicy.MIXED and vcpus < 2:
        vcpus = 2 * nodes
    memory = nodes * rng.choice((256, 512, 512, 1024, 2048, 4096))
    if rng.random() < 0.25 and nodes > 1:
        order = list(range(vcpus))
        rng.shuffle(order)
        cuts = sorted(rng.sample(range(1, vcpus), nodes - 1))
        parts = [frozenset(order[a:b]) for a, b in
                 zip([0] + cuts, cuts + [vcpus])]
        mems = [memory // nodes] * nodes
        shift = rng.choice((0, 256))
        mems[0] += shift
        mems[-1] -= shift
        layout = list(zip(parts, mems))
    else:
        per = vcpus // nodes
        layout = [(frozenset(range(n * per, (n + 1) * per)), memory // nodes)
                  for n in range(nodes)]
    if policy == fields.CPUAllocationPolicy.DEDICATED:
        dedicated = frozenset(range(vcpus))
    elif policy == fields.CPUAllocationPolicy.MIXED:
        dedicated = frozenset(rng.sample(range(vcpus),
                                         rng.randint(1, vcpus - 1)))
    else:
        dedicated = frozenset()
    pinned = policy in (fields.CPUAllocationPolicy.DEDICATED,
                        fields.CPUAllocationPolicy.MIXED)
    thread_policy = rng.choice(
        (None, None, 'prefer', 'require', 'isolate')) if pinned else None
    emulator = rng.choice((None, 'share', 'isolate', 'isolate')) if pinned \
        else None
    pagesize = rng.choice((None,) * 10 + (-1, -2, -3, 4, 2048, 1048576))
    cells = tuple(
        topology.InstanceCell(
            id=n, cpuset=cpus - dedicated, pcpuset=cpus & dedicated,
            memory=mem, pagesize=pagesize, cpu_policy=policy,
            cpu_thread_policy=thread_policy)
        for n, (cpus, mem) in enumerate(layout))
    return topology.InstanceTopology(cells=cells,
                                     emulator_threads_policy=emulator)


def random_case(seed: int) -> Case:
    rng = random.Random(seed)
    xml, (dedicated, shared, pinned), host = random_host(rng)
    inst = random_instance(rng)
    limits = None
    if rng.random() < 0.5:
        limits = hardware.Limits(rng.choice((1.0, 4.0, 16.0)),
                                 rng.choice((1.0, 1.5)))
    return Case(seed, xml, dedicated, shared, pinned, host, inst, limits)


def bundled(name: str, dedicated: str, shared: str):
    """A bundled example host, with its shared set and without it."""
    xml = data.example_host_xml(name)
    return (capabilities.host_topology_from_caps(xml, dedicated, shared),
            capabilities.host_topology_from_caps(xml, dedicated, ''))
