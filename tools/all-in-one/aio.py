#!/usr/bin/env python3
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

"""An all-in-one OpenStack cloud with nova-emulator-threads, on this machine.

    aio.py install      Debian packages and the cloud's virtualenv
    aio.py up           install, then start the whole cloud (fresh state)
    aio.py down         stop exactly what `up` started; destroy every guest
    aio.py status       what runs
    aio.py restart NAME stop one service (a name `status` prints) and start
                        it again exactly as `up` did; wait until it serves
    aio.py kill NAME    SIGKILL one service, as a crash would
    aio.py tempest      run the plugin's tests with `tempest run` (extra
                        arguments after "--" go to it: -- --regex test_faults)
    aio.py test         up, tempest, down (down runs even if a step fails)

Everything listens on 127.0.0.1 and lives under ``.aio/`` (``AIO_DIR``):
``venv/`` (the cloud's Python), ``etc/`` (every configuration, generated
from ``tools/all-in-one/templates/``), ``logs/`` (one log per service),
``run/`` (one pid file per service), ``data/`` (databases, images,
guests) and ``tempest/`` (the tempest workspace).

The cloud: PostgreSQL, RabbitMQ, Keystone, Glance, Placement, nova-api,
nova-conductor, nova-scheduler and two nova-compute hosts with this
project's driver, filter and validator, each host with its own libvirtd
(a private mount and UTS namespace, so each reports its own host name to
Nova) running real QEMU guests on this machine's CPUs, and a real
Neutron API (ML2 with no mechanism driver, so no agents): the guests have
no network, Nova and tempest only read from it.

``aio-compute1`` has every CPU dedicated (``cpu_dedicated_set``): it takes
isolate guests. ``aio-compute2`` shares the first CPU (``cpu_shared_set``)
and dedicates the rest: it shows where ``share`` puts emulator threads.
The two hosts share this machine's CPUs, as two machines would not: each
host's pins are exact for its own guests.

Needs root (apt, namespaces, libvirtd).
"""

import argparse
import os
import subprocess
import sys
import time
import typing

from allinone import install
from allinone import layout
from allinone import lifecycle

# ---------------------------------------------------------------------------
# tempest
# ---------------------------------------------------------------------------


def tempest(extra: typing.Sequence[str] = ()) -> int:
    workspace = layout.TEMPEST / 'aio'
    if not (workspace / 'etc' / 'tempest.conf').exists():
        raise layout.Failed('no tempest workspace in %s: run `up` first' % (
            workspace))
    argv = [str(layout.VENV / 'bin' / 'tempest'), 'run',
            '--workspace-path', str(layout.TEMPEST / 'workspace.yaml'),
            '--workspace', 'aio', '--config-file',
            str(workspace / 'etc' / 'tempest.conf'),
            '--regex', r'^nova_emulator_threads_tempest_plugin\.',
            # One at a time: the hosts have room for one isolate guest.
            '--concurrency', '1', *extra]
    layout.say('$ %s' % ' '.join(argv))
    return subprocess.run(argv, cwd=workspace, check=False).returncode


def test(totals: str | None) -> int:
    """up, tempest, down: down runs whatever failed before it."""
    timings = {}
    rc = 1
    try:
        started = time.monotonic()
        lifecycle.up()
        timings['up'] = time.monotonic() - started
        started = time.monotonic()
        rc = tempest(['--slowest'])
        timings['tempest'] = time.monotonic() - started
    except layout.Failed as exc:
        layout.say('FAILED: %s' % exc)
    finally:
        started = time.monotonic()
        try:
            lifecycle.down()
        except layout.Failed as exc:
            layout.say('FAILED: %s' % exc)
            rc = rc or 1
        timings['down'] = time.monotonic() - started
    layout.say('timings: %s' % ', '.join('%s %.0f s' % item
                                         for item in timings.items()))
    # The counts, as every tier ends (and for the Makefile's total). `up`
    # empties the workspace, so a failed `up` leaves no stale run to count.
    workspace = layout.TEMPEST / 'aio'
    if not workspace.exists():
        print('all-in-one: no test ran', flush=True)
        return rc or 1
    counted = subprocess.run(
        ['bash', str(layout.REPO / 'tools' / 'stestr-totals.sh'),
         str(layout.VENV / 'bin'), 'all-in-one'],
        cwd=workspace, check=False,
        env=dict(os.environ, **({'TEST_TOTALS': totals} if totals else {})))
    return rc or counted.returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description='An all-in-one OpenStack cloud with '
                    'nova-emulator-threads on this machine.')
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('install', help='Debian packages and the venv')
    commands.add_parser('up', help='start the cloud (fresh state)')
    commands.add_parser('down', help='stop what up started, destroy guests')
    commands.add_parser('status', help='what runs')
    for command, text in (
            ('restart', 'stop one service and start it as up did'),
            ('kill', 'SIGKILL one service, as a crash would')):
        commands.add_parser(command, help=text).add_argument(
            'name', help='a service, as `status` prints it')
    run_tempest = commands.add_parser(
        'tempest', help='run the plugin\'s tests (extra arguments go to '
                        '`tempest run`)')
    run_tempest.add_argument('args', nargs=argparse.REMAINDER)
    run_test = commands.add_parser('test', help='up, tempest, down')
    run_test.add_argument('--totals', metavar='FILE',
                          help='append "passed failed skipped" here')
    args = parser.parse_args()
    try:
        if args.command == 'install':
            install.install()
        elif args.command == 'up':
            install.require_root()
            try:
                lifecycle.up()
            except BaseException:
                layout.say('up failed: stopping what it started')
                lifecycle.down()
                raise
        elif args.command == 'down':
            lifecycle.down()
        elif args.command == 'status':
            return lifecycle.status()
        elif args.command == 'restart':
            lifecycle.restart(args.name)
        elif args.command == 'kill':
            lifecycle.kill(args.name)
        elif args.command == 'tempest':
            # `tempest -- --regex X`: what follows "--" goes to tempest.
            return tempest(args.args[1:] if args.args[:1] == ['--']
                           else args.args)
        else:
            return test(args.totals)
    except lifecycle.UnknownService as exc:
        print('aio.py %s: %s' % (args.command, exc), file=sys.stderr)
        return 2
    except layout.Failed as exc:
        layout.say('FAILED: %s' % exc)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
