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

"""Starting, watching and stopping the cloud's processes.

Each service has one log in ``logs/`` and one pid file in ``run/``, and
carries a mark in its environment, so that `down` stops exactly what `up`
started.
"""

import os
import pathlib
import signal
import socket
import subprocess
import time
import typing
import urllib.error

from allinone import layout

# The marks `up` puts in every service's environment, so `down` stops
# only what this `up` started (and finds strays it did not record).
MARK_SERVICE = 'AIO_SERVICE'
MARK_ROOT = 'AIO_ROOT'

START_TIMEOUT = 300.0
STOP_TIMEOUT = 20.0
# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def log_path(name: str) -> pathlib.Path:
    return layout.LOGS / (name + '.log')


def tail(name: str, lines: int = 25) -> str:
    try:
        text = log_path(name).read_text(errors='replace')
    except OSError as exc:
        return '(no log: %s)' % exc
    if not text.strip():
        return '    (the log is empty)'
    return '\n'.join('    ' + line
                     for line in text.rstrip().splitlines()[-lines:])


def service_env(name: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env[MARK_SERVICE] = name
    env[MARK_ROOT] = str(layout.ROOT)
    env['PATH'] = '%s:%s' % (layout.VENV / 'bin', env.get('PATH', ''))
    return env


def run(name: str, argv: list[str], **extra_env: str) -> None:
    """Run one setup command to completion, its output in ``name``'s log."""
    with open(log_path(name), 'ab') as log:
        log.write(('$ %s\n' % ' '.join(argv)).encode())
        log.flush()
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False,
                              env=service_env(name, **extra_env))
    if done.returncode != 0:
        raise layout.Failed(
            '%s failed (exit %d): %s\n  last lines of %s:\n%s' % (
                name, done.returncode, ' '.join(argv), log_path(name),
                tail(name)))


def spawn(name: str, argv: list[str], **extra_env: str) -> int:
    """Start a long-running service in its own session; record its pid."""
    with open(log_path(name), 'ab') as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                env=service_env(name, **extra_env))
    write_pid(name, proc.pid)
    return proc.pid


def write_pid(name: str, pid: int) -> None:
    (layout.RUN / (name + '.pid')).write_text('%d\n' % pid)


def read_pid(path: pathlib.Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def running(pid: int) -> bool:
    try:
        stat = pathlib.Path('/proc/%d/stat' % pid).read_text()
    except OSError:
        return False
    return stat.rsplit(')', 1)[1].split()[0] != 'Z'


def environ(pid: int) -> dict[str, str]:
    try:
        raw = pathlib.Path('/proc/%d/environ' % pid).read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b'=') for item in raw.split(b'\0') if item)
    return {k.decode(errors='replace'): v.decode(errors='replace')
            for k, _, v in pairs}


def ours(pid: int) -> bool:
    """Whether ``pid`` is a process some `up` of this tree started.

    Its environment carries our mark, unless the process retitled itself
    (setproctitle, as Nova's services do, overwrites the environment);
    then its command line names a file of this tree.
    """
    if environ(pid).get(MARK_ROOT) == str(layout.ROOT):
        return True
    try:
        cmdline = pathlib.Path('/proc/%d/cmdline' % pid).read_bytes()
    except OSError:
        return False
    return (str(layout.ROOT) + '/').encode() in cmdline


def _signal(pid: int, signum: int, group: bool = True) -> bool:
    """Signal ``pid``, or its whole process group if it leads one and
    ``group`` is true. Whether a group was signalled.
    """
    try:
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, signum)
            return True
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    return False


def group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (not a zombie)."""
    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        # state, ppid, pgrp
        if fields[2] == str(pgid) and fields[0] != 'Z':
            return True
    return False


def terminate(pids: typing.Collection[int],
              sig: int = signal.SIGTERM, group: bool = True) -> bool:
    """Stop processes together: ``sig`` to each (to its process group if
    it leads one and ``group`` is true), SIGKILL to those still there
    after STOP_TIMEOUT. Whether all of them, and every process of the
    groups signalled, are gone (a worker that outlives its leader would
    hold the service's port against a restart).
    """
    groups = [pid for pid in pids if _signal(pid, sig, group)]

    def gone() -> bool:
        return not (any(running(pid) for pid in pids) or
                    any(group_running(pgid) for pgid in groups))

    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if gone():
            return True
        time.sleep(0.1)
    for pid in pids:
        _signal(pid, signal.SIGKILL, group)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    return gone()


def wait_for(what: str, check: typing.Callable[[], bool],
             services: typing.Sequence[str],
             timeout: float = START_TIMEOUT) -> None:
    """Poll ``check`` until true; fail naming the service that died or
    did not come up, with the tail of its log.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        for service in services:
            pid = read_pid(layout.RUN / (service + '.pid'))
            if pid is None or not running(pid):
                raise layout.Failed(
                    '%s exited while waiting for %s; last lines '
                    'of %s:\n%s' % (service, what,
                                    log_path(service),
                                    tail(service)))
        if time.monotonic() > deadline:
            raise layout.Failed(
                '%s did not come up within %d s (waiting for %s); '
                'last lines of %s:\n%s' % (
                    services[0] if services else what, timeout,
                    what, log_path(services[0]),
                    tail(services[0])))
        time.sleep(0.5)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(('127.0.0.1', port)) == 0
