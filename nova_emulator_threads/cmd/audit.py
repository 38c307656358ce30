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


"""``nova-emulator-threads audit``: where this host's emulator threads run.

For every running guest: its vCPU pins, its emulator pin set, the actual
affinity of every thread that is not a vCPU (emulator, I/O, vnc, worker,
vhost), and findings with a severity and one sentence each (see
``nova_emulator_threads.host.audit`` for the checks).

Exit status: 0 when there is no finding, 1 when there are findings, 2 on
an error. ``--format json`` prints one object (an interface: keys are
only ever added)::

    {"host": {"online": [0, 1], "isolated": [], "isolcpus": [],
              "nohz_full": [], "machine_cpuset": null},
     "guests": [{"name": ..., "uuid": ..., "pid": ..., "nova": null,
                 "vcpupin": {"0": [1]}, "emulatorpin": [0, 1],
                 "iothreadpin": {}, "threads": [{"tid": ..., "name": ...,
                 "kind": "emulator", "cpus": [0, 1]}]}],
     "findings": [{"severity": "warning", "code": "...", "domain": ...,
                   "message": "...", "fixable_by_pin": true}]}

With ``--measure SECONDS`` the audit also measures what the placement
costs (``nova-emulator-threads measure`` over every guest): the table
gets each guest's figures and verdicts, the JSON object a ``"measure"``
key holding what ``measure --format json`` prints, and time lost by a
vCPU to emulator threads counts as a finding for the exit status.

The audit reads this host's ``/proc`` and ``/sys``, so ``--connect``
must name a libvirt daemon of this host (its default, or a socket); a
URI with a host name is refused.
"""

import argparse
import typing

from nova_emulator_threads.cmd import host_options
from nova_emulator_threads.cmd import measure as measure_cmd
from nova_emulator_threads.cmd import nova_conf
from nova_emulator_threads.cmd import output
from nova_emulator_threads.host import audit
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.host import measure
from nova_emulator_threads.host import snapshot
from nova_emulator_threads.host import sysfs
from nova_emulator_threads.objects import fields

EXIT_CLEAN = 0
EXIT_FINDINGS = 1


def add_parser(subparsers: typing.Any,
               parents: typing.Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        'audit', parents=parents,
        help='report where the emulator threads of running guests run, '
             'and what is wrong with it',
        description='Audit every running guest of this host: vCPU pins, '
                    'emulator pin set, the affinity of every non-vCPU '
                    'thread, and findings. Exit status 0: clean, 1: '
                    'findings, 2: error.')
    host_options.add_host_arguments(parser)
    nova_conf.add_shared_pool_affinity_argument(parser)
    parser.add_argument(
        '--measure', metavar='SECONDS', type=float, default=None,
        help='also measure, over SECONDS, how much time each vCPU loses '
             'to its emulator threads (see the measure command)')
    measure_cmd.add_threshold_argument(parser)
    output.add_arguments(parser, short_column=False)
    parser.set_defaults(func=run)


def shared_pool_placement(
        args: argparse.Namespace) -> tuple[str, dict[int, int] | None]:
    """The host's ``shared_pool_affinity``, and its CPU -> NUMA node map
    when that is ``numa`` (read only then).
    """
    affinity: str = nova_conf.emulator_threads_option(
        args, 'shared_pool_affinity')
    cpu_nodes = None
    if affinity == fields.SharedPoolAffinity.NUMA:
        cpu_nodes = sysfs.read_cpu_nodes(args.sys_root)
    return affinity, cpu_nodes


def run_audit(args: argparse.Namespace,
              conn: typing.Any | None = None,
              placement: tuple[str, dict[int, int] | None] | None = None,
              ) -> audit.AuditReport:
    """Read the host named by the arguments and audit it.

    :param placement: ``shared_pool_placement(args)``, if already read
    """
    cpu_shared_set = host_options.shared_set(args)
    host_options.check_local_uri(args)
    if conn is None:
        conn = libvirt_domains.open_connection(args.connect, read_only=True)
    host = snapshot.take_snapshot(conn, args.proc_root, args.sys_root)
    if placement is None:
        placement = shared_pool_placement(args)
    return audit.audit(host, cpu_shared_set, *placement)


def audit_and_measure(args: argparse.Namespace,
                      conn: typing.Any | None = None,
                      ) -> tuple[audit.AuditReport,
                                 measure.Measurement | None, int]:
    """The audit, the measurement ``--measure`` asks for, the status."""
    seconds = (None if args.measure is None else
               measure_cmd.seconds_value(args.measure, '--measure'))
    threshold = measure_cmd.threshold_value(args)
    # Before connecting: a remote URI is refused, not tried.
    host_options.check_local_uri(args)
    if conn is None:
        conn = libvirt_domains.open_connection(args.connect, read_only=True)
    report = run_audit(args, conn)
    measured = None
    if seconds is not None:
        measured = measure.measure_host(conn, seconds, (), args.proc_root,
                                        args.sys_root, threshold)
    found = report.findings or (measured and measured.findings)
    return report, measured, EXIT_FINDINGS if found else EXIT_CLEAN


def run(args: argparse.Namespace) -> int:
    report, measured, status = audit_and_measure(args)
    data = to_json(report)
    if measured is not None:
        data['measure'] = measure_cmd.to_json(measured)

    def table(_data: typing.Any) -> str:
        text = format_table(report)
        if measured is not None:
            text += '\n\n' + measure_cmd.format_table(measured)
        return text

    output.emit(args, data, table)
    return status


# -- output ------------------------------------------------------------------

def _cpus(cpus: frozenset[int] | None) -> list[int] | None:
    return sorted(cpus) if cpus is not None else None


def to_json(report: audit.AuditReport) -> dict[str, typing.Any]:
    """The JSON object of an audit."""
    host = report.snapshot
    machine = host.machine_cpuset
    guests = []
    for guest in report.guests:
        domain = guest.guest.domain
        nova = None
        if guest.policy is not None:
            request = guest.policy.request
            nova = {
                'instance': guest.policy.instance,
                'flavor': guest.policy.flavor,
                'cpu_policy': request.cpu_policy if request else None,
                'emulator_threads_policy': (
                    request.emulator_threads_policy if request else None),
                'checked': request is not None,
                'reason': guest.policy.reason,
            }
        guests.append({
            'name': domain.name, 'uuid': domain.uuid,
            'pid': guest.guest.pid, 'nova': nova,
            'vcpupin': {str(v): sorted(p)
                        for v, p in sorted(domain.vcpu_pins.items())},
            'emulatorpin': sorted(domain.emulator_pins),
            'iothreadpin': {str(i): sorted(p)
                            for i, p in sorted(domain.iothread_pins.items())},
            'threads': [{'tid': t.tid, 'name': t.name, 'kind': t.kind,
                         'index': t.index, 'cpus': sorted(t.cpus)}
                        for t in guest.threads],
        })
    return {
        'host': {
            'online': sorted(host.cpus.online),
            'isolated': sorted(host.cpus.isolated),
            'isolcpus': sorted(host.cpus.isolcpus),
            'nohz_full': sorted(host.cpus.nohz_full),
            'machine_cpuset': None if machine is None else {
                'path': machine.path, 'cgroup_version': machine.version,
                'cpus': sorted(machine.cpus),
                'configured': _cpus(machine.configured),
                'exclusive': machine.exclusive},
        },
        'guests': guests,
        'findings': [{'severity': f.severity, 'code': f.code,
                      'domain': f.domain, 'message': f.message,
                      'fixable_by_pin': f.fixable_by_pin}
                     for f in report.findings],
    }


def _pins(pins: typing.Mapping[int, frozenset[int]]) -> str:
    return ' '.join('%d:%s' % (key, findings.fmt(value))
                    for key, value in sorted(pins.items())) or 'none'


def format_table(report: audit.AuditReport) -> str:
    """The audit for people: the host, then one block per guest."""
    host = report.snapshot
    machine = host.machine_cpuset
    lines = ['host: online CPUs %s, isolated %s%s%s' % (
        findings.fmt(host.cpus.online), findings.fmt(host.cpus.isolated),
        (', nohz_full %s' % findings.fmt(host.cpus.nohz_full)
         if host.cpus.nohz_full else ''),
        (', %s cpuset %s (cgroup v%d)' % (machine.path,
                                          findings.fmt(machine.cpus),
                                          machine.version)
         if machine is not None else ''))]
    for guest in report.guests:
        domain = guest.guest.domain
        lines.append('')
        header = '%s (pid %s)' % (domain.name, guest.guest.pid or 'unknown')
        if guest.policy is not None:
            header += ': Nova instance %s, flavor %s, %s' % (
                guest.policy.instance, guest.policy.flavor,
                guest.policy.describe())
        lines.append(header)
        lines.append('  vCPU pins        %s' % _pins(domain.vcpu_pins))
        lines.append(
            '  emulator pins    %s' %
            findings.fmt(
                domain.emulator_pins))
        lines.append('  I/O thread pins  %s' % _pins(domain.iothread_pins))
        others = [t for t in guest.threads if t.kind != audit.VCPU]
        if others:
            lines.append('  %-8s %-16s %-9s %s' % ('TID', 'THREAD', 'KIND',
                                                   'MAY RUN ON'))
            for thread in others:
                lines.append('  %-8s %-16s %-9s %s' % (
                    thread.tid if thread.tid is not None else '-',
                    thread.name, thread.kind, findings.fmt(thread.cpus)))
        for finding in report.findings_for(domain.name):
            lines.append('  %s %s: %s' % (finding.severity.upper(),
                                          finding.code, finding.message))
    errors = sum(f.severity == findings.ERROR for f in report.findings)
    lines.append('')
    if report.findings:
        lines.append('%d guests, %d findings (%d errors, %d warnings)' % (
            len(report.guests), len(report.findings), errors,
            len(report.findings) - errors))
    else:
        lines.append('%d guests, no findings' % len(report.guests))
    return '\n'.join(lines)
