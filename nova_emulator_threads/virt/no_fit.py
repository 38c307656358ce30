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

"""Why a guest does not fit a host, in words an operator can act on.

The fitter's hot paths (``virt.hardware``) return one of the codes below
with its numbers for each guest cell that did not fit a host cell; only
``hardware.explain_no_fit`` asks for sentences, and this module writes
them: which cell, what it needs, what it has (free, not total), and the
rule that refused it.
"""

from collections.abc import Sequence

from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt.topology import HostCell
from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import InstanceCell
from nova_emulator_threads.virt.topology import InstanceTopology

# The codes, each with the numbers ``_describe`` reads.
PAGESIZE = 'pagesize'
MEMORY = 'memory'
PCPUS_TOTAL = 'pcpus_total'
CPUS_TOTAL = 'cpus_total'
PCPUS_FREE = 'pcpus_free'
PACKING = 'packing'
CPU_LIMIT = 'cpu_limit'
RAM_LIMIT = 'ram_limit'
PINNED_CORE = 'pinned_core'
FOREIGN_PINS = 'foreign_pins'
EMULATOR_CORE = 'emulator_core'

#: One guest cell that did not fit one host cell: (guest cell index, host
#: cell id, code, the code's numbers).
Failure = tuple[int, int, str, tuple[int, ...]]

def sentence(failures: Sequence[Failure], host: HostTopology,
             inst: InstanceTopology, reserved: Sequence[int]) -> str:
    """One sentence from the failures of a fit, in the order they came.

    :param reserved: emulator pCPUs each guest cell must carry
    """
    if not failures:
        return ('no assignment of guest cells to distinct host cells fits')
    cells = {cell.id: cell for cell in host.cells}
    reasons: list[str] = []
    for guest_cell, host_cell, code, numbers in failures:
        if code == PAGESIZE:
            reason = _describe_pages(numbers, guest_cell, cells[host_cell])
        elif code == PACKING:
            reason = _describe_packing(numbers[0], inst.cells[guest_cell],
                                       guest_cell, cells[host_cell])
        else:
            reason = _describe(code, numbers, guest_cell, host_cell,
                               reserved[guest_cell])
        if reason not in reasons:
            reasons.append(reason)
    if len(reasons) > MAX_REASONS:
        # A host with many cells gives one reason per cell tried: say how
        # many, the first few, and the last, which is what decided when
        # Nova's own answer is refused (``_unclaimable``).
        shown = reasons[:MAX_REASONS - 1] + reasons[-1:]
        return ('none of the %d host cells tried fits (%d reasons), among '
                'them: %s' % (len({failure[1] for failure in failures}),
                              len(reasons), '; '.join(shown)))
    return '; '.join(reasons)


#: A sentence lists at most this many reasons.
MAX_REASONS = 3


def _describe_pages(numbers: tuple[int, ...], guest_cell: int,
                    host_cell: HostCell) -> str:
    requested, memory_kb = numbers
    where = 'on host cell %d for guest cell %d' % (host_cell.id, guest_cell)
    sizes = {pages.size_kb: pages for pages in host_cell.mempages}
    if requested > 0 and requested not in sizes:
        return ('host cell %d has no %d KiB pages (hw:mem_page_size; it has '
                '%s) for guest cell %d' % (
                    host_cell.id, requested,
                    ', '.join('%d KiB' % size for size in sorted(sizes)) or
                    'none', guest_cell))
    free = ', '.join('%d MiB free in %d KiB pages' % (
        sizes[size].free_kb // 1024, size) for size in sorted(sizes)
        if requested <= 0 or size == requested)
    return ('not enough free pages of the requested size (%s) %s (needs %d '
            'MiB; %s)' % (_pagesize_name(requested), where,
                          memory_kb // 1024, free or 'no pages'))


def _describe_packing(required: int, cell: InstanceCell, guest_cell: int,
                      host_cell: HostCell) -> str:
    where = 'on host cell %d for guest cell %d' % (host_cell.id, guest_cell)
    free = frozenset(host_cell.pcpuset) - frozenset(host_cell.pinned_cpus)
    whole = sum(1 for core in host_cell.siblings
                if core and frozenset(core) <= free)
    policy = cell.cpu_thread_policy
    if policy == fields.CPUThreadAllocationPolicy.ISOLATE:
        return ('cpu_thread_policy=isolate gives every pCPU a core of its '
                'own, all threads free: %d cores needed %s, %d such cores '
                'free' % (required, where, whole))
    if policy == fields.CPUThreadAllocationPolicy.REQUIRE:
        return ('cpu_thread_policy=require puts the vCPUs on thread '
                'siblings of cores whose threads are free, and the %d free '
                'pCPUs %s (%d whole free cores) cannot take %d that way'
                % (len(free), where, whole, required))
    return ('the free pCPUs %s cannot take %d pCPUs under cpu_thread_policy='
            '%s' % (where, required, policy or 'prefer'))


def _describe(code: str, numbers: tuple[int, ...], guest_cell: int,
              host_cell: int, reserved: int) -> str:
    where = 'on host cell %d for guest cell %d' % (host_cell, guest_cell)
    incl = (' incl. %d for emulator threads' % reserved) if reserved else ''
    if code == MEMORY:
        return ('not enough free memory %s (needs %d MiB, has %d MiB)'
                % (where, numbers[0], numbers[1]))
    if code == PCPUS_TOTAL:
        return ('not enough dedicated pCPUs %s (needs %d%s; the cell has %d '
                'in [compute] cpu_dedicated_set)'
                % (where, numbers[0], incl, numbers[1]))
    if code == CPUS_TOTAL:
        return ('not enough shared CPUs %s (needs %d, has %d)'
                % (where, numbers[0], numbers[1]))
    if code == PCPUS_FREE:
        return ('not enough free pCPUs %s (needs %d%s; %d of its %d are '
                'free)' % (where, numbers[0], incl, numbers[1], numbers[2]))
    if code == PINNED_CORE:
        return ("%spCPU %d %s shares a core with pinned pCPU %d, which "
                'cpu_thread_policy=isolate forbids (Nova would pick it and '
                'then fail its claim)' % (
                    "the emulator threads' " if numbers[2] else '',
                    numbers[0], where, numbers[1]))
    if code == FOREIGN_PINS:
        return ('Nova would reuse pins of guest cell %d from another host '
                'cell (pCPU %d is not in host cell %d) and then fail its '
                'claim' % (guest_cell, numbers[0], host_cell))
    if code == EMULATOR_CORE:
        return ('no free pCPU %s is on a core without one of the guest\'s '
                'vCPUs: Nova would take pCPU %d for the emulator threads, '
                'an SMT sibling of pCPU %d (vCPU %d), which '
                '[emulator_threads] emulator_pcpu_siblings = avoid forbids'
                % (where, numbers[0], numbers[1], numbers[2]))
    if code == CPU_LIMIT:
        return ('CPU allocation limit reached %s (usage would be %d, limit '
                '%d)' % (where, numbers[0], numbers[1]))
    return ('RAM allocation limit reached %s (usage would be %d MiB, limit '
            '%d MiB)' % (where, numbers[0], numbers[1]))


def _pagesize_name(pagesize: int) -> str:
    names = {fields.MEMPAGES_SMALL: 'small', fields.MEMPAGES_LARGE:
             'large', fields.MEMPAGES_ANY: 'any'}
    return names.get(pagesize, '%d KiB' % pagesize)
