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


"""``nova-emulator-threads pin``: move a guest's emulator threads.

``pin DOMAIN CPUSET`` pins the emulator threads and the I/O threads of a
guest to CPUSET, in the running guest (``--live``) and in its persistent
definition (``--config``). With neither option both are changed when
the guest has both (running and persistent), so that live and
definition never disagree; a single one can be asked for, and then the
command says that they now differ.

``pin --apply-audit`` runs the audit and moves the emulator threads of
every guest with a finding that moving them fixes, to the set
``host.remedy.recommend`` chooses, live and in the definition; guests
without a safe set are listed with the reason. It then audits again.

Before anything changes, the set is checked as the audit would check it:
online CPUs, the machine cpuset, the guest's own pinned vCPUs (unless
``--allow-vcpu-overlap``), other guests' dedicated pCPUs, isolated CPUs.
How a failure half-way is handled is described in ``host.pinning``:
every step is reported as applied, undone, or not undone.

Exit status: 0 when done (and, with ``--apply-audit``, the host audits
clean), 1 when ``--apply-audit`` leaves findings, 2 on an error.
"""

import argparse
import sys
import typing

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads.cmd import audit as audit_cmd
from nova_emulator_threads.cmd import host_options
from nova_emulator_threads.cmd import nova_conf
from nova_emulator_threads.cmd import output
from nova_emulator_threads.host import audit
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.host import pinning
from nova_emulator_threads.host import remedy
from nova_emulator_threads.host import snapshot

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def add_parser(subparsers: typing.Any,
               parents: typing.Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        'pin', parents=parents, help="move a guest's emulator and I/O threads",
        description='Pin the emulator and I/O threads of DOMAIN to CPUSET, '
                    'or (--apply-audit) of every guest the audit reports '
                    'to a set that clears the findings.')
    parser.add_argument('domain', metavar='DOMAIN', nargs='?',
                        help='guest name or UUID')
    parser.add_argument('cpuset', metavar='CPUSET', nargs='?',
                        help="host CPUs, in Nova's range syntax ('0-1,^1')")
    parser.add_argument('--live', action='store_true',
                        help='change the running guest (with neither '
                             '--live nor --config: both, where the guest '
                             'has both)')
    parser.add_argument('--config', action='store_true',
                        help='change the persistent definition (with '
                             'neither --live nor --config: both, where the '
                             'guest has both)')
    parser.add_argument('--allow-vcpu-overlap', action='store_true',
                        help="allow pCPUs of the guest's own pinned vCPUs "
                             "(e.g. vCPU 0's, for DPDK guests)")
    parser.add_argument('--apply-audit', action='store_true',
                        help='fix what the audit reports, guest by guest')
    parser.add_argument('--dry-run', action='store_true',
                        help='with --apply-audit: say what would be done')
    host_options.add_host_arguments(parser)
    nova_conf.add_shared_pool_affinity_argument(parser)
    output.add_arguments(parser, short_column=False)
    parser.set_defaults(func=run)


def _scopes(args: argparse.Namespace,
            domain: libvirt_domains.Domain) -> tuple[bool, bool]:
    live, config = args.live, args.config
    if not live and not config:
        return domain.active, domain.persistent
    if live and not domain.active:
        raise exception.Invalid(
            reason='--live was given but domain %s is not running; use '
                   '--config to change its definition' % domain.name)
    if config and not domain.persistent:
        raise exception.Invalid(
            reason='--config was given but domain %s is transient (it has '
                   'no persistent definition); use --live' % domain.name)
    return live, config


def _width(conn: typing.Any, cpus: frozenset[int], name: str,
           spec: str) -> int:
    libvirt = libvirt_domains.libvirt_module()
    try:
        width = int(conn.getCPUMap()[0])
    except libvirt.libvirtError as exc:
        raise exception.HostInspectionFailed(
            source='libvirt host CPU map',
            reason=libvirt_domains.error_text(exc)) from None
    if max(cpus) >= width:
        raise exception.InvalidEmulatorCPUSet(
            domain=name, cpuset=spec,
            reason='libvirt reports %d host CPUs (0-%d)' % (width, width - 1))
    return width


def _say(line: str) -> None:
    output.write(line + '\n')


def _print_result(result: pinning.PinResult) -> None:
    for step in result.steps:
        _say('  ' + step.describe())


def pin_one(args: argparse.Namespace, conn: typing.Any) -> int:
    spec = args.cpuset
    cpus = cpuset.parse_cpu_set_option(spec, key='CPUSET')
    dom = libvirt_domains.lookup_domain(conn, args.domain)
    domain = libvirt_domains.read_domain(dom)
    if domain is None:
        raise exception.DomainNotFound(domain=args.domain)
    live, config = _scopes(args, domain)
    report = audit.audit(snapshot.take_snapshot(
        conn, args.proc_root, args.sys_root, extra=[domain]))
    refused = remedy.problems(report, domain.name, cpus,
                              allow_vcpu_overlap=args.allow_vcpu_overlap)
    if refused:
        raise exception.InvalidEmulatorCPUSet(
            domain=domain.name, cpuset=spec, reason='; '.join(refused))
    width = _width(conn, cpus, domain.name, spec)
    if domain.nova is not None:
        print('note: %s is a Nova instance: Nova writes its placement again '
              'at every hard reboot, resize and migration; set '
              'hw:cpu_emulator_threads on its flavor to make a placement '
              'last' % domain.name, file=sys.stderr)
    result = pinning.pin_emulator(dom, cpus, live=live, config=config,
                                  width=width)
    _say('%s: emulator and I/O threads -> %s' % (domain.name,
                                                 findings.fmt(cpus)))
    _print_result(result)
    if not result.ok:
        raise exception.PinFailed(domain=domain.name,
                                  reason=result.summary())
    if domain.active and domain.persistent and live != config:
        print('note: only the %s pins of %s were changed: the live guest '
              'and its persistent definition now differ'
              % ('live' if live else 'persistent', domain.name),
              file=sys.stderr)
    return EXIT_OK


def apply_audit(args: argparse.Namespace, conn: typing.Any) -> int:
    cpu_shared_set = host_options.shared_set(args)
    # Read once: the audit after the changes judges by the same.
    placement = audit_cmd.shared_pool_placement(args)
    report = audit_cmd.run_audit(args, conn, placement)
    failed = []
    for guest in report.guests:
        name = guest.guest.name
        fixable = [f for f in report.findings_for(name) if f.fixable_by_pin]
        if not fixable:
            continue
        advice = remedy.recommend(report, name, cpu_shared_set, *placement)
        if advice.cpus is None:
            _say('%s: not changed: %s' % (name, advice.reason))
            continue
        domain = guest.guest.domain
        _say('%s: emulator and I/O threads -> %s (%s)%s' % (
            name, findings.fmt(advice.cpus), advice.reason,
            ' [dry run]' if args.dry_run else ''))
        if args.dry_run:
            continue
        try:
            dom = libvirt_domains.lookup_domain(conn, name)
            width = _width(conn, advice.cpus, name,
                           findings.fmt(advice.cpus))
        except exception.EmulatorThreadsException as exc:
            _say('  failed: %s' % exc)
            failed.append(name)
            continue
        result = pinning.pin_emulator(dom, advice.cpus, live=domain.active,
                                      config=domain.persistent, width=width)
        _print_result(result)
        if not result.ok:
            _say('  failed: %s' % result.summary())
            failed.append(name)
    if args.dry_run:
        return EXIT_FINDINGS if report.findings else EXIT_OK
    after = audit_cmd.run_audit(args, conn, placement)
    _say('audit after the changes: %s' % (
        '%d findings' % len(after.findings) if after.findings
        else 'no findings'))
    for finding in after.findings:
        _say('  %s %s %s: %s' % (finding.domain, finding.severity.upper(),
                                 finding.code, finding.message))
    if failed:
        raise exception.PinFailed(domain=', '.join(failed),
                                  reason='see the steps above')
    return EXIT_FINDINGS if after.findings else EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.format != 'table' or args.columns:
        raise exception.Invalid(
            reason='pin reports what it does step by step, as text; '
                   '-f/--format and -c/--column are for plan and audit')
    if args.apply_audit:
        if args.domain or args.cpuset or args.live or args.config:
            raise exception.Invalid(
                reason='--apply-audit chooses the guests and CPUs itself; '
                       'give it without DOMAIN, CPUSET, --live or --config')
    elif not args.domain or not args.cpuset:
        raise exception.Invalid(
            reason='pin needs DOMAIN and CPUSET, or --apply-audit')
    elif args.dry_run:
        raise exception.Invalid(reason='--dry-run goes with --apply-audit')
    else:
        # Bad input is refused before anything connects to libvirt.
        cpuset.parse_cpu_set_option(args.cpuset, key='CPUSET')
    host_options.check_local_uri(args)
    host_options.shared_set(args)
    conn = libvirt_domains.open_connection(args.connect, read_only=False)
    try:
        if args.apply_audit:
            return apply_audit(args, conn)
        return pin_one(args, conn)
    finally:
        conn.close()
