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


"""``nova-emulator-threads measure``: what emulator threads cost the vCPUs.

Over ``--seconds``, for every vCPU of every running guest (or of the
guests named): the time its thread ran, the time it waited runnable, its
pCPUs, and the CPU time the guest's emulator threads spent on those
pCPUs, with a verdict per vCPU (see ``nova_emulator_threads.host.measure``
for how the time is attributed).

Exit status: 0 when no vCPU lost emulator time above ``--threshold-ms``,
1 when some did, 2 on an error. ``--format json`` prints one object (an
interface: keys are only ever added)::

    {"seconds": 6.0, "stopped": [],
     "guests": [{"domain": "instance-0000001d", "uuid": "...",
       "pid": 73517, "instance": "vnf-1", "started": false,
       "exited_threads": 0, "unmeasured_threads": 0,
       "emulator_cpu_s": 0.05,
       "vcpus": [{"vcpu": 0, "pcpus": [34], "ran_s": 5.91,
                  "waited_s": 0.18, "emulator_on_pcpus_s": 0.04,
                  "exact": true, "verdict": "..."}],
       "emulator_threads": [{"tid": 73517, "name": "qemu-kvm",
                             "kind": "emulator", "cpus": [10, 14],
                             "ran_s": 0.03, "waited_s": 0.0,
                             "started": false}]}],
     "findings": [{"severity": "warning", "code": "...", ...}]}
"""

import argparse
import math
import typing

from nova_emulator_threads import exception
from nova_emulator_threads.cmd import host_options
from nova_emulator_threads.cmd import output
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.host import measure

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
DEFAULT_SECONDS = 6.0
#: The longest interval: a measurement is a look, the exporter watches.
MAX_SECONDS = 3600.0


def add_threshold_argument(parser: argparse.ArgumentParser) -> None:
    """The threshold option (shared with ``audit --measure``)."""
    parser.add_argument(
        '--threshold-ms', metavar='MS', type=float, default=(
            measure.DEFAULT_THRESHOLD_S * 1000),
        help='emulator time on a vCPU\'s pCPUs from which on it is a '
             'finding (default: %(default)s)')


def seconds_value(value: float, key: str = '--seconds') -> float:
    """Check an interval: one sentence naming the key when it is bad."""
    if not math.isfinite(value) or not 0.1 <= value <= MAX_SECONDS:
        raise exception.Invalid(
            reason='%s=%s: expected a number of seconds from 0.1 to %d'
                   % (key, value, MAX_SECONDS))
    return value


def threshold_value(args: argparse.Namespace) -> float:
    value = args.threshold_ms
    if not math.isfinite(value) or value < 0:
        raise exception.Invalid(
            reason='--threshold-ms=%s: expected a number of milliseconds '
                   'of 0 or more' % value)
    return float(value) / 1000


def add_parser(subparsers: typing.Any,
               parents: typing.Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        'measure', parents=parents,
        help='measure how much time the vCPUs of running guests lose to '
             'their own emulator threads',
        description='Sample every running guest (or the guests named) '
                    'twice, SECONDS apart: per vCPU, the time it ran, the '
                    'time it waited runnable, and the CPU time the '
                    "guest's emulator threads (QEMU main loop, I/O "
                    'threads, workers, vhost) spent on its pCPUs. Exit '
                    'status 0: none, 1: some, 2: error.')
    host_options.add_host_arguments(parser, cpu_shared_set=False)
    parser.add_argument(
        '--seconds', metavar='N', type=float, default=DEFAULT_SECONDS,
        help='how long to measure (default: %(default)s)')
    add_threshold_argument(parser)
    output.add_arguments(parser, short_column=False)
    parser.add_argument('domains', metavar='DOMAIN', nargs='*',
                        help='guests to measure, by name or UUID '
                             '(default: every running guest)')
    parser.set_defaults(func=run)


def take_measurement(args: argparse.Namespace,
                     conn: typing.Any | None = None,
                     ) -> tuple[measure.Measurement, int]:
    """Measure what the arguments say; the result and the exit status."""
    seconds = seconds_value(args.seconds)
    threshold = threshold_value(args)
    host_options.check_local_uri(args)
    if conn is None:
        conn = libvirt_domains.open_connection(args.connect, read_only=True)
    result = measure.measure_host(conn, seconds, args.domains,
                                  args.proc_root, args.sys_root, threshold)
    return result, EXIT_FINDINGS if result.findings else EXIT_CLEAN


def run(args: argparse.Namespace) -> int:
    result, status = take_measurement(args)
    output.emit(args, to_json(result), lambda _data: format_table(result))
    return status


# -- output ------------------------------------------------------------------

def _r(seconds: float) -> float:
    return round(seconds, 6)


def _thread_json(thread: measure.ThreadUsage) -> dict[str, typing.Any]:
    return {'tid': thread.tid, 'name': thread.name, 'kind': thread.kind,
            'cpus': sorted(thread.cpus), 'ran_s': _r(thread.ran_s),
            'waited_s': _r(thread.waited_s), 'started': thread.started}


def to_json(result: measure.Measurement) -> dict[str, typing.Any]:
    """The JSON object of a measurement."""
    return {
        'seconds': round(result.seconds, 3),
        'stopped': list(result.stopped),
        'guests': [{
            'domain': guest.domain, 'uuid': guest.uuid, 'pid': guest.pid,
            'instance': guest.instance, 'started': guest.started,
            'exited_threads': guest.exited_threads,
            'unmeasured_threads': guest.unmeasured_threads,
            'emulator_cpu_s': _r(guest.emulator_cpu_s),
            'vcpus': [{'vcpu': v.vcpu, 'pcpus': sorted(v.pcpus),
                       'ran_s': _r(v.ran_s), 'waited_s': _r(v.waited_s),
                       'emulator_on_pcpus_s': _r(v.emulator_on_pcpus_s),
                       'exact': v.exact, 'verdict': v.verdict}
                      for v in guest.vcpus],
            'emulator_threads': [_thread_json(t)
                                 for t in guest.emulator_threads],
        } for guest in result.guests],
        'findings': [{'severity': f.severity, 'code': f.code,
                      'domain': f.domain, 'message': f.message,
                      'fixable_by_pin': f.fixable_by_pin}
                     for f in result.findings],
    }


def format_guest(guest: measure.GuestUsage) -> list[str]:
    """One guest's block of the table (also used by ``audit``)."""
    lines = ['  %-5s %-8s %9s %9s %13s' % (
        'VCPU', 'PCPUS', 'RAN s', 'WAITED s', 'EMULATOR s')]
    for vcpu in guest.vcpus:
        lines.append('  %-5d %-8s %9.3f %9.3f %13.3f' % (
            vcpu.vcpu, findings.fmt(vcpu.pcpus), vcpu.ran_s, vcpu.waited_s,
            vcpu.emulator_on_pcpus_s))
    if guest.emulator_threads:
        lines.append('  %-8s %-16s %-9s %-8s %9s' % (
            'TID', 'THREAD', 'KIND', 'CPUS', 'RAN s'))
        for thread in guest.emulator_threads:
            lines.append('  %-8d %-16s %-9s %-8s %9.3f' % (
                thread.tid, thread.name, thread.kind,
                findings.fmt(thread.cpus), thread.ran_s))
    for vcpu in guest.vcpus:
        lines.append('  vCPU %d: %s' % (vcpu.vcpu, vcpu.verdict))
    notes = []
    if guest.started:
        notes.append('started during the interval')
    if guest.exited_threads:
        notes.append('%d threads exited during the interval (their time '
                     'after the first sample is not counted)'
                     % guest.exited_threads)
    if guest.unmeasured_threads:
        notes.append('%d threads were seen only at the end and are not '
                     'counted' % guest.unmeasured_threads)
    lines += ['  note: %s' % note for note in notes]
    return lines


def format_table(result: measure.Measurement) -> str:
    """The measurement for people: one block per guest."""
    lines = ['measured %.1f s' % result.seconds]
    for guest in result.guests:
        lines.append('')
        header = '%s (pid %s, uuid %s)' % (guest.domain, guest.pid or
                                           'unknown', guest.uuid)
        if guest.instance:
            header += ': Nova instance %s' % guest.instance
        lines.append(header)
        lines += format_guest(guest)
    for name in result.stopped:
        lines.append('')
        lines.append('%s stopped during the interval: not measured' % name)
    lines.append('')
    if result.findings:
        lines.append('%d guests, %d vCPUs lost time to emulator threads' % (
            len(result.guests), len(result.findings)))
    else:
        lines.append('%d guests, no vCPU lost time to emulator threads' %
                     len(result.guests))
    return '\n'.join(lines)
