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

"""``nova-emulator-threads plan``: what Nova would do on this host.

Given a host (libvirt capabilities XML plus ``[compute]
cpu_dedicated_set`` / ``cpu_shared_set`` and what is already pinned) and a
flavor, print where every vCPU and the emulator threads go, what the
instance costs in placement, and the ``<cputune>`` libvirt would get.
With no flavor it plans a few example flavors side by side, on the
bundled two-socket host unless ``--host`` names another. With
``--density`` it packs identical guests of the flavor onto the host until
the next one no longer fits, and counts them per emulator threads policy.

The JSON output is an interface (see the README): one object per plan.
The plan itself is ``host.planning``'s; this module reads the command
line and the host, and prints tables.
"""

import argparse
import os
import sys
import typing
from collections.abc import Mapping, Sequence

from nova_emulator_threads import cpu_request
from nova_emulator_threads import cpuset
from nova_emulator_threads import data
from nova_emulator_threads import exception
from nova_emulator_threads import extra_spec_keys
from nova_emulator_threads.cmd import nova_conf
from nova_emulator_threads.cmd import output
from nova_emulator_threads.host import planning
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import density
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import capabilities
from nova_emulator_threads.virt.libvirt import cputune_reader

#: The bundled host's configuration when ``--host`` is not given: the
#: first core of each socket (both threads) for host load and unpinned
#: guests, every other CPU for pinned guests.
EXAMPLE_SHARED_SET = '0,10,20,30'
EXAMPLE_DEDICATED_SET = '1-9,11-19,21-29,31-39'

#: Example flavors: (name, vCPUs, memory MiB, extra specs).
EXAMPLE_FLAVORS: tuple[tuple[str, int, int, dict[str, str]], ...] = (
    ('dedicated', 4, 4096, {'hw:cpu_policy': 'dedicated'}),
    ('share', 4, 4096, {'hw:cpu_policy': 'dedicated',
                        cpu_request.EMULATOR_THREADS_KEY: 'share'}),
    ('isolate', 4, 4096, {'hw:cpu_policy': 'dedicated',
                          cpu_request.EMULATOR_THREADS_KEY: 'isolate'}),
    ('isolate+realtime', 4, 4096, {'hw:cpu_policy': 'dedicated',
                                   cpu_request.EMULATOR_THREADS_KEY: 'isolate',
                                   'hw:cpu_realtime': 'yes',
                                   'hw:cpu_realtime_mask': '^0'}),
)

def add_parser(subparsers: 'argparse._SubParsersAction[typing.Any]',
               parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        'plan', help='show where vCPUs and emulator threads would go',
        parents=parents, description=__doc__.split('\n\n')[1])
    parser.add_argument(
        '--host', metavar='CAPS.xml',
        help='the host\'s "virsh capabilities" output, - for stdin '
             '(default: the bundled two-socket example host, with '
             'cpu_dedicated_set %s and cpu_shared_set %s unless either is '
             'given)' % (EXAMPLE_DEDICATED_SET, EXAMPLE_SHARED_SET))
    parser.add_argument('--cpu-dedicated-set', metavar='R',
                        help="[compute] cpu_dedicated_set, e.g. '2-15'")
    parser.add_argument('--cpu-shared-set', metavar='R',
                        help="[compute] cpu_shared_set, e.g. '0-1'")
    parser.add_argument('--pinned', metavar='R', default='',
                        help='pCPUs already pinned by other guests')
    parser.add_argument('--vcpus', type=int, metavar='N',
                        help='flavor vCPUs (with no flavor given, example '
                             'flavors are planned)')
    parser.add_argument('--memory-mb', type=int, metavar='M', default=None,
                        help='flavor memory in MiB (default 2048)')
    parser.add_argument('--extra-spec', action='append', default=[],
                        metavar='KEY=VALUE',
                        help='a flavor extra spec; repeat for several')
    parser.add_argument(
        '--emulator-pcpu-siblings', choices=fields.EmulatorPCPUSiblings.ALL,
        default=None,
        help="[emulator_threads] emulator_pcpu_siblings: may the isolate "
             "emulator pCPU be an SMT sibling of a vCPU's pCPU (allow, "
             "Nova's choice and the default) or not (avoid)")
    parser.add_argument('--density', action='store_true',
                        help='pack identical guests of the flavor (--vcpus, '
                             'default 1) until the next does not fit, and '
                             'count them per emulator threads policy; '
                             '--extra-spec adds to every policy\'s flavor')
    add_shared_pool_arguments(parser)
    output.add_arguments(parser)
    parser.set_defaults(func=run)


def add_shared_pool_arguments(parser: argparse.ArgumentParser) -> None:
    """``[emulator_threads] shared_pool_*`` of the planned host."""
    nova_conf.add_shared_pool_affinity_argument(parser)
    parser.add_argument(
        '--shared-pool-vcpus', type=int, metavar='N', default=None,
        help="[emulator_threads] shared_pool_vcpus: VCPU of the shared "
             "pool each 'share' guest claims (default: from --config-file, "
             "else 0, as Nova)")
    parser.add_argument(
        '--shared-pool-quota', action='store_true', default=None,
        help="[emulator_threads] shared_pool_quota: cap 'share' guests' "
             "emulator threads at what they claim (default: from "
             "--config-file, else off, as Nova)")
    parser.add_argument(
        '--cpu-allocation-ratio', type=float, metavar='R', default=4.0,
        help='[DEFAULT] cpu_allocation_ratio of the shared pool (default '
             '4.0, Nova\'s initial ratio)')


def shared_pool_options(args: argparse.Namespace) -> planning.SharedPool:
    """The shared pool options from the command line (or the files),
    checked.
    """
    vcpus = nova_conf.emulator_threads_option(args, 'shared_pool_vcpus')
    if vcpus < 0:
        raise exception.Invalid(
            reason='--shared-pool-vcpus=%d is not allowed; expected an '
                   'integer of at least 0' % vcpus)
    if not args.cpu_allocation_ratio > 0:
        raise exception.Invalid(
            reason='--cpu-allocation-ratio=%r is not allowed; expected a '
                   'number above 0' % args.cpu_allocation_ratio)
    return planning.SharedPool(
        affinity=nova_conf.emulator_threads_option(
            args, 'shared_pool_affinity'),
        vcpus=vcpus,
        quota=nova_conf.emulator_threads_option(args, 'shared_pool_quota'),
        cpu_allocation_ratio=args.cpu_allocation_ratio)


def _extra_specs(pairs: Sequence[str]) -> dict[str, str]:
    specs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        key = key.strip()
        if not sep or not key:
            raise exception.Invalid(
                reason='--extra-spec %r is not KEY=VALUE, e.g. '
                       'hw:cpu_emulator_threads=isolate' % pair)
        extra_spec_keys.check_known(key, value)
        if key in specs and specs[key] != value:
            raise exception.Invalid(
                reason='--extra-spec %s is given twice, as %r and %r; a '
                       'flavor has one value per key' % (key, specs[key],
                                                         value))
        specs[key] = value
    return specs


def _read_caps(args: argparse.Namespace) -> tuple[str | bytes, str]:
    """The capabilities XML ``--host`` names (``-``: stdin), and a name."""
    if args.host is None:
        return data.example_host_xml(), 'bundled example host'
    if args.host == '-':
        source, stream = 'on stdin', sys.stdin.buffer
        return _read_limited(stream, source), source
    source = '--host %r' % args.host
    try:
        with open(args.host, 'rb') as f:
            return _read_limited(f, source), source
    except OSError as exc:
        raise exception.InvalidHostCapabilities(
            source=source, reason=exc.strerror or str(exc)) from None


def _read_limited(stream: typing.BinaryIO, source: str) -> bytes:
    text = stream.read(capabilities.MAX_CAPS_BYTES + 1)
    if len(text) > capabilities.MAX_CAPS_BYTES:
        try:
            size = '%d bytes' % os.fstat(stream.fileno()).st_size
        except (OSError, ValueError):
            size = 'more than %d bytes' % capabilities.MAX_CAPS_BYTES
        raise exception.InvalidHostCapabilities(
            source=source, reason='%s is larger than the %d allowed' % (
                size, capabilities.MAX_CAPS_BYTES))
    return text


def _load_host(args: argparse.Namespace, caps: tuple[str | bytes, str],
               cpu_shared_set: str | None = None) -> topology.HostTopology:
    xml, source = caps
    dedicated = args.cpu_dedicated_set
    shared = args.cpu_shared_set if cpu_shared_set is None else cpu_shared_set
    if args.host is None and dedicated is None and shared is None:
        # The bundled host comes with its own configuration; once either
        # set is given (flag or nova.conf), the other is unset, as in
        # nova.conf.
        dedicated, shared = EXAMPLE_DEDICATED_SET, EXAMPLE_SHARED_SET
    return capabilities.host_topology_from_caps(
        xml, cpu_dedicated_set=dedicated or '', cpu_shared_set=shared or '',
        pinned=args.pinned, source=source)


def run(args: argparse.Namespace) -> int:
    specs = _extra_specs(args.extra_spec)
    pool = shared_pool_options(args)
    caps = _read_caps(args)
    host = _load_host(args, caps)
    if args.density:
        return _run_density(args, caps, host, specs)
    # The flag wins over [emulator_threads] of --config-file.
    siblings = nova_conf.emulator_threads_option(
        args, 'emulator_pcpu_siblings')
    if args.vcpus is None and not specs and args.memory_mb is None:
        plans = [(name, planning.plan(host, vcpus, memory, flavor_specs,
                                      pool=pool,
                                      emulator_pcpu_siblings=siblings))
                 for name, vcpus, memory, flavor_specs in EXAMPLE_FLAVORS]
    else:
        vcpus, memory = _flavor_size(args)
        plans = [('flavor', planning.plan(host, vcpus, memory, specs,
                                          pool=pool,
                                          emulator_pcpu_siblings=siblings))]
    data: planning.Plan
    if len(plans) == 1:
        data = plans[0][1]
    else:
        data = {'plans': [dict(result, flavor=name)
                          for name, result in plans]}
    output.emit(args, data, lambda _data: format_table(host, plans))
    return 0 if all(result['fits'] for _name, result in plans) else 1


def _flavor_size(args: argparse.Namespace) -> tuple[int, int]:
    """``--vcpus`` (default 1) and ``--memory-mb`` (default 2048)."""
    vcpus = 1 if args.vcpus is None else args.vcpus
    memory = 2048 if args.memory_mb is None else args.memory_mb
    for key, value in (('--vcpus', vcpus), ('--memory-mb', memory)):
        if value < 1:
            raise exception.Invalid(
                reason='%s=%d: must be a positive integer' % (key, value))
    return vcpus, memory


def _run_density(args: argparse.Namespace, caps: tuple[str | bytes, str],
                 host: topology.HostTopology, specs: dict[str, str]) -> int:
    vcpus, memory = _flavor_size(args)
    # The "share without cpu_shared_set" policy needs the host without it.
    without = _load_host(args, caps, cpu_shared_set='')
    pool = shared_pool_options(args)
    rows = planning.density_report(
        host, without, vcpus, memory, specs, shared_pool_vcpus=pool.vcpus,
        cpu_allocation_ratio=pool.cpu_allocation_ratio)
    output.emit(args,
                {'density': [planning.density_json(row) for row in rows]},
                lambda _data: 'host: %s\n%s' % (_host_summary(host),
                                                 format_density_table(rows)))
    return 0


def format_density_table(rows: Sequence[density.DensityRow]) -> str:
    """One line per policy: what the flavor sets, and how many fit."""
    table = [['policy', 'vCPUs', 'pCPUs/guest', 'guests',
              'on own vCPU core', 'emulator threads']]
    notes = []
    for row in rows:
        guests = '-' if row.guests is None else str(row.guests)
        if row.note:
            notes.append('%s: %s' % (row.policy, row.note))
            guests += ' (%d)' % len(notes)
        table.append([row.policy, str(row.vcpus),
                      '-' if row.pcpus_per_guest is None
                      else str(row.pcpus_per_guest),
                      guests, _sibling_count(row), row.emulator_threads])
    widths = [max(len(line[i]) for line in table)
              for i in range(len(table[0]))]
    lines = []
    for index, line in enumerate(table):
        lines.append('  '.join(cell.ljust(width) for cell, width in
                               zip(line, widths)).rstrip())
        if index == 0:
            lines.append('  '.join('-' * width for width in widths))
    lines.extend('(%d) %s' % (number, note)
                 for number, note in enumerate(notes, 1))
    return '\n'.join(lines)


def _sibling_count(row: density.DensityRow) -> str:
    # Only isolate reserves an emulator pCPU of the guest's own.
    if (row.emulator_on_vcpu_sibling is None or
            row.extra_specs.get(cpu_request.EMULATOR_THREADS_KEY) !=
            fields.CPUEmulatorThreadsPolicy.ISOLATE):
        return '-'
    return str(row.emulator_on_vcpu_sibling)


# -- table output ------------------------------------------------------------


def _cells_rows(result: planning.Plan) -> dict[str, str]:
    if not result['fits']:
        return {'fits': 'no', 'reason': result['reason']}
    rows = {'fits': 'yes'}
    cells = result['cells']
    rows['guest -> host cell'] = ', '.join(
        '%d -> %d' % (c['guest_cell'], c['host_cell']) for c in cells) or '-'
    rows['vCPU pins'] = ' '.join(
        '%s:%d' % (vcpu, pcpu) for c in cells
        for vcpu, pcpu in c['cpu_pinning'].items()) or 'floating'
    reserved = sorted({p for c in cells for p in c['cpuset_reserved']})
    rows['cpuset_reserved'] = cpuset.format_cpu_spec(reserved) or '-'
    rows['emulatorpin'] = cpuset.format_cpu_spec(result['emulatorpin'] or
                                                 ()) or '-'
    if reserved:
        rows['emulator core'] = ', '.join(
            'sibling of vCPU %d (pCPU %d)' % (item['vcpu'], item['vcpu_pcpu'])
            for item in result['emulator_pcpu_sibling_of']) or 'no vCPU'
    if result['cputune_xml']:
        cap = cputune_reader.parse_cputune(
            result['cputune_xml']).emulator_bandwidth
        if cap is not None:
            rows['emulator quota'] = '%d us per %d us' % (cap.quota,
                                                          cap.period)
    return rows


def format_table(host: topology.HostTopology,
                 plans: Sequence[tuple[str, planning.Plan]]) -> str:
    """Plans side by side: one column per flavor, one row per aspect."""
    columns = []
    for name, result in plans:
        rows = {'emulator threads': result['emulator_threads_policy'] or
                '(none)'}
        rows.update(_cells_rows(result))
        rows['overhead'] = _resources(result['overhead'])
        rows['placement'] = _resources(result['placement'])
        columns.append((name, rows))
    labels: list[str] = []
    for _name, rows in columns:
        labels.extend(label for label in rows if label not in labels)
    table = [[''] + [name for name, _rows in columns]]
    table += [[label] + [rows.get(label, '') for _n, rows in columns]
              for label in labels]
    widths = [max(len(row[i]) for row in table)
              for i in range(len(table[0]))]
    lines = ['host: %s' % _host_summary(host)]
    for index, row in enumerate(table):
        lines.append('  '.join(cell.ljust(width) for cell, width in
                               zip(row, widths)).rstrip())
        if index == 0:
            lines.append('  '.join('-' * width for width in widths))
    lines += ['warning: %s: %s' % (name, warning)
              for name, result in plans for warning in result['warnings']]
    return '\n'.join(lines)


def _resources(resources: Mapping[str, int]) -> str:
    return ', '.join('%s=%d' % item for item in sorted(resources.items())
                     ) or '-'


def _host_summary(host: topology.HostTopology) -> str:
    parts = []
    for cell in host.cells:
        parts.append('cell %d: dedicated %s, shared %s, pinned %s' % (
            cell.id, cpuset.format_cpu_spec(cell.pcpuset) or '-',
            cpuset.format_cpu_spec(cell.cpuset) or '-',
            cpuset.format_cpu_spec(cell.pinned_cpus) or '-'))
    return '; '.join(parts)
