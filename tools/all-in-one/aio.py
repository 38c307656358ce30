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
    aio.py tempest      run the plugin's tests with `tempest run`
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
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
TEMPLATES = HERE / 'templates'
ROOT = pathlib.Path(os.environ.get('AIO_DIR', REPO / '.aio')).resolve()
VENV = ROOT / 'venv'
ETC = ROOT / 'etc'
LOGS = ROOT / 'logs'
RUN = ROOT / 'run'
DATA = ROOT / 'data'
TEMPEST = ROOT / 'tempest'

PORTS = {
    'postgres': 15433, 'rabbitmq': 15673, 'rabbitmq_dist': 25673,
    'epmd': 14369, 'keystone': 15000, 'glance': 19292, 'placement': 18778,
    'nova': 18774, 'neutron': 19696,
}
URLS = {
    'keystone': 'http://127.0.0.1:%d' % PORTS['keystone'],
    'glance': 'http://127.0.0.1:%d' % PORTS['glance'],
    'placement': 'http://127.0.0.1:%d' % PORTS['placement'],
    'nova': 'http://127.0.0.1:%d/v2.1' % PORTS['nova'],
    'neutron': 'http://127.0.0.1:%d' % PORTS['neutron'],
}
APT_PACKAGES = (
    'postgresql', 'rabbitmq-server', 'libvirt-daemon-system',
    'libvirt-daemon-driver-qemu', 'libvirt-clients', 'qemu-system-x86',
    'qemu-utils', 'libvirt-dev', 'pkg-config', 'util-linux',
)
# The releases the cloud was brought up with; Nova is the one the
# project supports (pyproject.toml).
PIP_PACKAGES = (
    'nova==34.0.0', 'openstack-placement==16.0.0', 'keystone==30.0.0',
    'glance==33.0.0', 'neutron==29.0.0', 'tempest==47.0.0', 'SQLAlchemy<2.1',
    'libvirt-python==9.0.0', 'python-openstackclient==10.5.0',
    'uwsgi==2.0.31', 'psycopg2-binary==2.9.13',
)
PG_BIN = pathlib.Path('/usr/lib/postgresql/15/bin')
RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'
DATABASES = ('keystone', 'glance', 'placement', 'neutron', 'nova_api',
             'nova_cell0', 'nova_cell1')
# Placement microversion for the inventory checks.
PLACEMENT_VERSION = 'placement 1.39'
# The marks `up` puts in every service's environment, so `down` stops
# only what this `up` started (and finds strays it did not record).
MARK_SERVICE = 'AIO_SERVICE'
MARK_ROOT = 'AIO_ROOT'

START_TIMEOUT = 300.0
STOP_TIMEOUT = 20.0
# Order matters for `down`: the reverse of this.
ORDER = ('postgresql', 'rabbitmq', 'keystone', 'glance', 'placement',
         'neutron', 'virtlogd-*', 'libvirtd-*', 'nova-api',
         'nova-conductor', 'nova-scheduler', 'nova-compute-*')


class Failed(Exception):
    """A step of the cloud failed; the message says which and why."""


def say(message: str) -> None:
    print('all-in-one: %s' % message, flush=True)


# ---------------------------------------------------------------------------
# The compute hosts
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ComputeHost:
    name: str
    cpu_dedicated_set: str
    cpu_shared_set: str | None

    @property
    def tree(self) -> pathlib.Path:
        """The libvirtd's private /etc, /run, /var/lib, /var/cache."""
        return DATA / ('libvirt-' + self.name)

    @property
    def libvirt_uri(self) -> str:
        return 'qemu:///system?socket=%s' % (self.tree / 'run' /
                                              'libvirt-sock')


def compute_hosts() -> tuple[ComputeHost, ComputeHost]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise Failed('the all-in-one cloud needs at least 2 CPUs (one '
                     'dedicated guest CPU and one for its emulator '
                     'threads); this machine lets us use %d' % len(cpus))
    listed = ','.join(map(str, cpus))
    return (ComputeHost('aio-compute1', listed, None),
            ComputeHost('aio-compute2', ','.join(map(str, cpus[1:])),
                        str(cpus[0])))


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

def log_path(name: str) -> pathlib.Path:
    return LOGS / (name + '.log')


def tail(name: str, lines: int = 25) -> str:
    try:
        text = log_path(name).read_text(errors='replace')
    except OSError as exc:
        return '(no log: %s)' % exc
    return '\n'.join('    ' + line
                     for line in text.rstrip().splitlines()[-lines:])


def service_env(name: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env[MARK_SERVICE] = name
    env[MARK_ROOT] = str(ROOT)
    env['PATH'] = '%s:%s' % (VENV / 'bin', env.get('PATH', ''))
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
        raise Failed('%s failed (exit %d): %s\n  last lines of %s:\n%s' % (
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
    (RUN / (name + '.pid')).write_text('%d\n' % pid)


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
    if environ(pid).get(MARK_ROOT) == str(ROOT):
        return True
    try:
        cmdline = pathlib.Path('/proc/%d/cmdline' % pid).read_bytes()
    except OSError:
        return False
    return (str(ROOT) + '/').encode() in cmdline


def terminate(pid: int, sig: int = signal.SIGTERM) -> bool:
    """Stop ``pid`` (its whole process group if it leads one)."""
    def send(signum: int) -> None:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass

    send(sig)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not running(pid):
            return True
        time.sleep(0.1)
    send(signal.SIGKILL)
    time.sleep(0.5)
    return not running(pid)


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
            pid = read_pid(RUN / (service + '.pid'))
            if pid is None or not running(pid):
                raise Failed('%s exited while waiting for %s; last lines '
                             'of %s:\n%s' % (service, what,
                                             log_path(service),
                                             tail(service)))
        if time.monotonic() > deadline:
            raise Failed('%s did not come up within %d s (waiting for %s); '
                         'last lines of %s:\n%s' % (
                             services[0] if services else what, timeout,
                             what, log_path(services[0]),
                             tail(services[0])))
        time.sleep(0.5)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(('127.0.0.1', port)) == 0


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def http(method: str, url: str, body: typing.Any = None,
         token: str | None = None,
         headers: dict[str, str] | None = None,
         ) -> tuple[int, typing.Any, typing.Any]:
    """One request: (status, response headers, decoded JSON or None)."""
    data = None
    all_headers = {'Accept': 'application/json'}
    if isinstance(body, bytes):
        data = body
        all_headers['Content-Type'] = 'application/octet-stream'
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers['Content-Type'] = 'application/json'
    if token:
        all_headers['X-Auth-Token'] = token
    all_headers.update(headers or {})
    # Only the cloud's own http://127.0.0.1 URLs come here.
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                     headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            status, reply, text = (response.status, response.headers,
                                   response.read())
    except urllib.error.HTTPError as exc:
        status, reply, text = exc.code, exc.headers, exc.read()
    try:
        decoded = json.loads(text) if text else None
    except ValueError:
        decoded = text.decode(errors='replace')
    return status, reply, decoded


def api(method: str, url: str, body: typing.Any = None,
        token: str | None = None, **headers: str) -> typing.Any:
    status, _reply, decoded = http(method, url, body, token, headers)
    if status >= 400:
        raise Failed('%s %s: HTTP %d: %s' % (method, url, status, decoded))
    return decoded


def answers(url: str) -> bool:
    """Whether an API answers at all (any status below 500)."""
    status, _reply, _body = http('GET', url)
    return status < 500


def token(user: str, password: str, project: str) -> str:
    body = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': user, 'domain': {'id': 'default'},
            'password': password}}},
        'scope': {'project': {'name': project,
                              'domain': {'id': 'default'}}}}}
    status, reply, decoded = http(
        'POST', URLS['keystone'] + '/v3/auth/tokens', body)
    if status != 201:
        raise Failed('keystone refused a token for %s: HTTP %d: %s' % (
            user, status, decoded))
    return reply['X-Subject-Token']


# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

def require_root() -> None:
    if os.geteuid() != 0:
        raise Failed('needs root: it installs Debian packages, starts '
                     'libvirtd in private namespaces and runs QEMU '
                     '(running as uid %d)' % os.geteuid())


def missing_apt_packages() -> list[str]:
    missing = []
    for package in APT_PACKAGES:
        done = subprocess.run(
            ['dpkg-query', '-W', '-f', '${db:Status-Status}', package],
            capture_output=True, text=True, check=False)
        if done.stdout != 'installed':
            missing.append(package)
    return missing


def install() -> None:
    """Debian packages and the cloud's virtualenv (reused while this
    script and the package list are unchanged).
    """
    require_root()
    for path in (ROOT, LOGS):
        path.mkdir(parents=True, exist_ok=True)
    missing = missing_apt_packages()
    if missing:
        say('installing Debian packages: %s' % ' '.join(missing))
        # Debian's policy-rc.d keeps the services from starting: the
        # cloud starts its own, with its own configuration.
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        for argv in (['apt-get', 'update', '-q'],
                     ['apt-get', 'install', '-y', '-q', *missing]):
            with open(log_path('install'), 'ab') as log:
                done = subprocess.run(argv, stdout=log,
                                      stderr=subprocess.STDOUT, env=env,
                                      check=False)
            if done.returncode != 0:
                raise Failed('%s failed; last lines of %s:\n%s' % (
                    ' '.join(argv), log_path('install'), tail('install')))
    key = hashlib.sha256()
    for path in (pathlib.Path(__file__), REPO / 'pyproject.toml',
                 REPO / 'setup.cfg'):
        key.update(path.read_bytes())
    stamp = VENV / ('.installed-' + key.hexdigest()[:16])
    if stamp.exists():
        return
    started = time.monotonic()
    say('creating the cloud\'s virtualenv %s (about 2 minutes)' % VENV)
    if not (VENV / 'bin' / 'python').exists():
        run('install', [sys.executable, '-m', 'venv', str(VENV)])
    pip = [str(VENV / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet']
    run('install', pip + ['pip>=23.1'])
    run('install', pip + list(PIP_PACKAGES))
    # Editable: the cloud runs this checkout's code, tempest finds the
    # plugin through its entry point.
    run('install', pip + ['--editable', str(REPO)])
    for old in VENV.glob('.installed-*'):
        old.unlink()
    stamp.touch()
    say('virtualenv ready in %.0f s' % (time.monotonic() - started))


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r'{{(\w+)}}')


def render(template: str, target: pathlib.Path,
           values: dict[str, typing.Any]) -> None:
    text = (TEMPLATES / template).read_text()

    def value(match: re.Match[str]) -> str:
        try:
            return str(values[match.group(1)])
        except KeyError:
            raise Failed('template %s uses {{%s}}, which aio.py does not '
                         'define' % (template, match.group(1))) from None

    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_PLACEHOLDER.sub(value, text))
    target.chmod(0o600)


def settings() -> dict[str, typing.Any]:
    """Every template value; passwords are new with every `up`."""
    values: dict[str, typing.Any] = {
        'venv': VENV, 'etc': ETC, 'logs': LOGS, 'data': DATA,
        'db_password': secrets.token_hex(12),
        'service_password': secrets.token_hex(12),
        'admin_password': secrets.token_hex(12),
        'keystone_url': URLS['keystone'], 'glance_url': URLS['glance'],
    }
    values.update({'%s_port' % name: port for name, port in PORTS.items()})
    return values


def write_configs(values: dict[str, typing.Any],
                  hosts: typing.Sequence[ComputeHost],
                  virt_type: str) -> None:
    render('keystone.conf', ETC / 'keystone' / 'keystone.conf', values)
    render('placement.conf', ETC / 'placement' / 'placement.conf', values)
    render('glance-api.conf', ETC / 'glance' / 'glance-api.conf', values)
    shutil.copy(VENV / 'etc' / 'glance' / 'glance-api-paste.ini',
                ETC / 'glance')
    render('nova.conf', ETC / 'nova' / 'nova.conf', values)
    render('nova-controller.conf', ETC / 'nova' / 'nova-controller.conf',
           values)
    shutil.copy(VENV / 'etc' / 'nova' / 'api-paste.ini', ETC / 'nova')
    render('neutron.conf', ETC / 'neutron' / 'neutron.conf', values)
    render('ml2_conf.ini', ETC / 'neutron' / 'ml2_conf.ini', values)
    shutil.copy(VENV / 'etc' / 'neutron' / 'api-paste.ini', ETC / 'neutron')
    for host in hosts:
        cpu_sets = 'cpu_dedicated_set = %s' % host.cpu_dedicated_set
        if host.cpu_shared_set is not None:
            cpu_sets += '\ncpu_shared_set = %s' % host.cpu_shared_set
        render('nova-compute.conf', ETC / 'nova' / (
            'nova-compute-%s.conf' % host.name), dict(
                values, host=host.name, cpu_sets=cpu_sets,
                virt_type=virt_type, libvirt_uri=host.libvirt_uri))
    rabbit = ETC / 'rabbitmq'
    render('rabbitmq.conf', rabbit / 'rabbitmq.conf', values)
    (rabbit / 'enabled_plugins').write_text('[].\n')
    openrc = ETC / 'openrc'
    openrc.write_text(
        '# source this file to use the all-in-one cloud as its admin\n'
        'export OS_AUTH_URL=%s/v3\nexport OS_USERNAME=admin\n'
        'export OS_PASSWORD=%s\nexport OS_PROJECT_NAME=admin\n'
        'export OS_USER_DOMAIN_ID=default\n'
        'export OS_PROJECT_DOMAIN_ID=default\n'
        'export OS_REGION_NAME=RegionOne\n'
        'export OS_IDENTITY_API_VERSION=3\n'
        'export PATH=%s/bin:$PATH\n' % (
            URLS['keystone'], values['admin_password'], VENV))
    openrc.chmod(0o600)


# ---------------------------------------------------------------------------
# The services, in the order `up` starts them
# ---------------------------------------------------------------------------

def start_postgresql() -> None:
    """A private cluster: sqlite gives "database is locked" once several
    Nova processes share it.
    """
    pgdata = DATA / 'postgresql'
    socket_dir = DATA / 'postgresql-run'
    for path in (pgdata, socket_dir):
        path.mkdir(parents=True)
        shutil.chown(path, 'postgres', 'postgres')
    as_postgres = ['setpriv', '--reuid=postgres', '--regid=postgres',
                   '--init-groups']
    run('postgresql', as_postgres + [
        str(PG_BIN / 'initdb'), '--pgdata', str(pgdata), '--username',
        'postgres', '--auth', 'trust', '--no-sync', '--encoding', 'UTF8'])
    spawn('postgresql', as_postgres + [
        str(PG_BIN / 'postgres'), '-D', str(pgdata),
        '-c', 'listen_addresses=127.0.0.1',
        '-p', str(PORTS['postgres']), '-k', str(socket_dir),
        # A throwaway cloud: durability buys nothing here.
        '-c', 'fsync=off', '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off', '-c', 'max_connections=300'])
    wait_for('PostgreSQL on port %d' % PORTS['postgres'],
             lambda: port_open(PORTS['postgres']), ['postgresql'], 60)


def create_databases(password: str) -> None:
    psql = ['psql', '--quiet', '--set', 'ON_ERROR_STOP=1', '--host',
            '127.0.0.1', '--port', str(PORTS['postgres']), '--username',
            'postgres', '--dbname', 'postgres', '--command']
    deadline = time.monotonic() + 30
    while subprocess.run(psql + ['SELECT 1'], capture_output=True,
                         check=False).returncode != 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    run('postgresql', psql + [
        "CREATE ROLE aio LOGIN PASSWORD '%s'" % password])
    for name in DATABASES:
        run('postgresql', psql + ['CREATE DATABASE %s OWNER aio' % name])


def start_rabbitmq() -> None:
    base = DATA / 'rabbitmq'
    base.mkdir(parents=True)
    spawn('rabbitmq', [RABBITMQ_SERVER], **rabbitmq_env())


def rabbitmq_env() -> dict[str, str]:
    base = DATA / 'rabbitmq'
    return {
        'HOME': str(base),  # the Erlang cookie
        'RABBITMQ_NODENAME': 'aio@localhost',
        'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
        'RABBITMQ_NODE_PORT': str(PORTS['rabbitmq']),
        'RABBITMQ_DIST_PORT': str(PORTS['rabbitmq_dist']),
        'RABBITMQ_CONFIG_FILE': str(ETC / 'rabbitmq' / 'rabbitmq'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': str(
            ETC / 'rabbitmq' / 'enabled_plugins'),
        'RABBITMQ_MNESIA_BASE': str(base / 'mnesia'),
        'RABBITMQ_LOG_BASE': str(LOGS),
        'RABBITMQ_PID_FILE': str(base / 'rabbitmq.pid'),
        'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS':
            '-kernel inet_dist_use_interface {127,0,0,1}',
        'ERL_EPMD_ADDRESS': '127.0.0.1',
        'ERL_EPMD_PORT': str(PORTS['epmd']),
    }


def uwsgi(name: str, module: str, port: int, threads: int = 4,
          **env: str) -> None:
    spawn(name, [
        str(VENV / 'bin' / 'uwsgi'), '--http-socket',
        '127.0.0.1:%d' % port, '--module', module, '--master',
        '--processes', '1', '--threads', str(threads), '--enable-threads',
        '--lazy-apps',
        '--die-on-term', '--need-app', '--buffer-size', '65535',
        # Without it clients see ConnectionResetError on reused sockets.
        '--add-header', 'Connection: close',
        '--disable-logging'], **env)


def nova_controller_config() -> list[str]:
    return ['--config-file', str(ETC / 'nova' / 'nova.conf'),
            '--config-file', str(ETC / 'nova' / 'nova-controller.conf')]


def sync_databases(hosts: typing.Sequence[ComputeHost]) -> None:
    """Each service's schema; the four run side by side."""
    bin_ = VENV / 'bin'
    nova = [str(bin_ / 'nova-manage'), *nova_controller_config()]
    cell0 = 'postgresql+psycopg2://aio:%s@127.0.0.1:%d/nova_cell0'
    keystone = [str(bin_ / 'keystone-manage'), '--config-file',
                str(ETC / 'keystone' / 'keystone.conf')]
    neutron = [str(bin_ / 'neutron-db-manage'), '--config-file',
               str(ETC / 'neutron' / 'neutron.conf'), '--config-file',
               str(ETC / 'neutron' / 'ml2_conf.ini')]
    steps = {
        'keystone-setup': [
            keystone + ['db_sync'],
            keystone + ['fernet_setup', '--keystone-user', 'root',
                        '--keystone-group', 'root'],
            keystone + ['credential_setup', '--keystone-user', 'root',
                        '--keystone-group', 'root'],
        ],
        'glance-setup': [[str(bin_ / 'glance-manage'), '--config-file',
                          str(ETC / 'glance' / 'glance-api.conf'),
                          'db_sync']],
        'placement-setup': [[str(bin_ / 'placement-manage'),
                             '--config-file',
                             str(ETC / 'placement' / 'placement.conf'),
                             'db', 'sync']],
        # Neutron's migration d553edeb540f is MySQL-only (ALTER TABLE ...
        # CONVERT TO CHARACTER SET) and PostgreSQL rolls the whole run
        # back on it: migrate up to its parent, mark it done, go on.
        'neutron-setup': [
            neutron + ['upgrade', 'ad80a9f07c5c'],
            neutron + ['stamp', 'd553edeb540f'],
            neutron + ['upgrade', 'heads'],
        ],
        'nova-setup': [
            nova + ['api_db', 'sync'],
            nova + ['cell_v2', 'map_cell0', '--database_connection',
                    cell0 % (_db_password(), PORTS['postgres'])],
            nova + ['cell_v2', 'create_cell', '--name', 'cell1'],
            nova + ['db', 'sync'],
        ],
    }
    for name in ('keystone', 'glance', 'placement', 'neutron', 'nova'):
        for sub in (DATA / name,):
            sub.mkdir(parents=True, exist_ok=True)
    # One shell per service runs its steps in order; the services' chains
    # run in parallel.
    procs = {}
    for name, commands in steps.items():
        script = ' && '.join(
            'echo "$ %s" && %s' % (' '.join(c), ' '.join(c))
            for c in commands)
        log = open(log_path(name), 'ab')
        procs[name] = (subprocess.Popen(
            ['sh', '-c', script], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=service_env(name)), log)
    failures = []
    for name, (proc, log) in procs.items():
        if proc.wait() != 0:
            failures.append(name)
        log.close()
    if failures:
        raise Failed('database setup failed: %s' % '; '.join(
            '%s (last lines of %s:\n%s)' % (name, log_path(name),
                                            tail(name))
            for name in failures))


_PASSWORDS: dict[str, str] = {}


def _db_password() -> str:
    return _PASSWORDS['db']


def bootstrap_keystone(values: dict[str, typing.Any]) -> None:
    run('keystone-setup', [
        str(VENV / 'bin' / 'keystone-manage'), '--config-file',
        str(ETC / 'keystone' / 'keystone.conf'), 'bootstrap',
        '--bootstrap-password', values['admin_password'],
        '--bootstrap-admin-url', URLS['keystone'] + '/v3',
        '--bootstrap-internal-url', URLS['keystone'] + '/v3',
        '--bootstrap-public-url', URLS['keystone'] + '/v3',
        '--bootstrap-region-id', 'RegionOne'])


def create_catalog(values: dict[str, typing.Any]) -> str:
    """The service project, users and endpoints; returns an admin token."""
    keystone = URLS['keystone'] + '/v3'
    admin = token('admin', values['admin_password'], 'admin')
    project = api('POST', keystone + '/projects', {'project': {
        'name': 'service', 'domain_id': 'default'}}, admin)['project']['id']
    roles = {role['name']: role['id'] for role in api(
        'GET', keystone + '/roles', token=admin)['roles']}
    if 'service' not in roles:
        roles['service'] = api('POST', keystone + '/roles', {'role': {
            'name': 'service'}}, admin)['role']['id']
    for user in ('nova', 'placement', 'glance', 'neutron'):
        user_id = api('POST', keystone + '/users', {'user': {
            'name': user, 'password': values['service_password'],
            'domain_id': 'default', 'default_project_id': project}},
            admin)['user']['id']
        for role in ('admin', 'service'):
            api('PUT', keystone + '/projects/%s/users/%s/roles/%s' % (
                project, user_id, roles[role]), token=admin)
    for kind, name, url in (('compute', 'nova', URLS['nova']),
                            ('placement', 'placement', URLS['placement']),
                            ('image', 'glance', URLS['glance']),
                            ('network', 'neutron', URLS['neutron'])):
        service = api('POST', keystone + '/services', {'service': {
            'type': kind, 'name': name}}, admin)['service']['id']
        for interface in ('public', 'internal'):
            api('POST', keystone + '/endpoints', {'endpoint': {
                'service_id': service, 'interface': interface,
                'url': url, 'region_id': 'RegionOne'}}, admin)
    return admin


def start_libvirtd(host: ComputeHost) -> None:
    """libvirtd + virtlogd of one compute host, in private mount and UTS
    namespaces: their own /etc/libvirt, /run/libvirt, /var/lib/libvirt
    and /var/cache/libvirt (directories of ``host.tree``), and their own
    host name, which libvirt reports and Nova uses as the node name.
    """
    private = {'etc': '/etc/libvirt', 'run': '/run/libvirt',
               'lib': '/var/lib/libvirt', 'cache': '/var/cache/libvirt',
               'log': '/var/log/libvirt'}
    for name in private:
        (host.tree / name).mkdir(parents=True, exist_ok=True)
    values = {'host': host.name, 'logs': LOGS}
    for conf in ('libvirtd.conf', 'virtlogd.conf', 'qemu.conf'):
        render(conf, host.tree / 'etc' / conf, values)
    libvirtd_pid = RUN / ('libvirtd-%s.pid' % host.name)
    virtlogd_pid = RUN / ('virtlogd-%s.pid' % host.name)
    lines = ['set -e', 'hostname %s' % host.name]
    for name, target in private.items():
        lines += ['mkdir -p %s' % target,
                  'mount --bind %s %s' % (host.tree / name, target)]
    lines += [
        'virtlogd --daemon --config /etc/libvirt/virtlogd.conf '
        '--pid-file %s' % virtlogd_pid,
        'libvirtd --daemon --config /etc/libvirt/libvirtd.conf '
        '--pid-file %s' % libvirtd_pid,
    ]
    run('libvirtd-%s' % host.name, [
        'unshare', '--mount', '--uts', '--propagation', 'private',
        'sh', '-c', '\n'.join(lines)])


def libvirt_answers(host: ComputeHost) -> bool:
    return subprocess.run(
        ['virsh', '--connect', host.libvirt_uri, 'hostname'],
        capture_output=True, check=False).returncode == 0


def choose_virt_type(host: ComputeHost) -> str:
    """KVM when libvirt can use it here (nested virtualization), TCG
    (``qemu``) otherwise.
    """
    done = subprocess.run(
        ['virsh', '--connect', host.libvirt_uri, 'domcapabilities',
         '--virttype', 'kvm'], capture_output=True, check=False)
    return 'kvm' if done.returncode == 0 else 'qemu'


def boot_image() -> bytes:
    """A 1 MiB raw disk: an MBR with one Linux partition. Glance's format
    inspector refuses a bare boot sector; a guest just sits in its
    firmware, which is all the tests need of it.
    """
    disk = bytearray(1024 * 1024)
    entry = struct.pack('<B3sB3sII', 0x80, b'\x00\x02\x00', 0x83,
                        b'\x00\x20\x20', 1, len(disk) // 512 - 1)
    disk[446:446 + 16] = entry
    disk[510:512] = b'\x55\xaa'
    return bytes(disk)


def upload_image(admin: str) -> str:
    glance = URLS['glance'] + '/v2/images'
    image = api('POST', glance, {
        'name': 'aio-mbr', 'disk_format': 'raw', 'container_format': 'bare',
        'visibility': 'public'}, admin)['id']
    api('PUT', '%s/%s/file' % (glance, image), boot_image(), admin)
    wait_for('the image upload', lambda: api(
        'GET', '%s/%s' % (glance, image), token=admin)['status'] == 'active',
        ['glance'], 60)
    return image


def create_flavor(admin: str) -> str:
    """The small unpinned flavor tempest's configuration asks for; the
    plugin's tests create their own pinned flavors.
    """
    return api('POST', URLS['nova'] + '/flavors', {'flavor': {
        'name': 'aio.tiny', 'ram': 128, 'vcpus': 1, 'disk': 1}},
        admin)['flavor']['id']


def compute_ready(host: ComputeHost, admin: str) -> bool:
    """The host's service is up and placement has its PCPU inventory."""
    services = api('GET', URLS['nova'] + '/os-services?binary=nova-compute'
                   '&host=%s' % host.name, token=admin)['services']
    if not any(s['state'] == 'up' for s in services):
        return False
    version = {'OpenStack-API-Version': PLACEMENT_VERSION}
    providers = api('GET', URLS['placement'] + '/resource_providers?name='
                    + host.name, token=admin, **version)
    for provider in providers['resource_providers']:
        inventories = api('GET', URLS['placement'] + '/resource_providers/'
                          '%s/inventories' % provider['uuid'], token=admin,
                          **version)['inventories']
        if 'PCPU' in inventories:
            return True
    return False


def write_tempest_workspace(values: dict[str, typing.Any],
                            hosts: typing.Sequence[ComputeHost],
                            image: str, flavor: str) -> None:
    workspace = TEMPEST / 'aio'
    run('tempest', [str(VENV / 'bin' / 'tempest'), 'init', '--name', 'aio',
                    '--workspace-path', str(TEMPEST / 'workspace.yaml'),
                    str(workspace)])
    share = hosts[1]
    render('tempest.conf', workspace / 'etc' / 'tempest.conf', dict(
        values, image_id=image, flavor_id=flavor,
        compute_count=len(hosts),
        libvirt_uris=','.join('%s:%s' % (h.name, h.libvirt_uri)
                              for h in hosts),
        share_host=share.name,
        share_host_cpu_shared_set=share.cpu_shared_set))


def up() -> None:
    require_root()
    for pid_file in RUN.glob('*.pid') if RUN.exists() else ():
        pid = read_pid(pid_file)
        if pid is not None and running(pid) and ours(pid):
            raise Failed('the cloud is already up (%s runs as pid %d); '
                         'run `down` first' % (pid_file.stem, pid))
    started = time.monotonic()
    install()
    hosts = compute_hosts()
    for path in (ETC, RUN, DATA, TEMPEST, LOGS):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    values = settings()
    _PASSWORDS['db'] = values['db_password']

    say('starting PostgreSQL and RabbitMQ')
    start_postgresql()
    create_databases(values['db_password'])
    write_configs(values, hosts, 'qemu')  # virt type set below
    start_rabbitmq()
    say('starting libvirtd for %s' % ', '.join(h.name for h in hosts))
    for host in hosts:
        start_libvirtd(host)
    for host in hosts:
        wait_for('libvirtd of %s' % host.name,
                 lambda h=host: libvirt_answers(h),
                 ['libvirtd-%s' % host.name], 60)
    virt_type = choose_virt_type(hosts[0])
    write_configs(values, hosts, virt_type)
    say('virt_type = %s (%s)' % (virt_type, {
        'kvm': 'KVM works here, nested',
        'qemu': 'KVM does not work here: TCG emulation'}[virt_type]))

    say('creating the databases\' schemas')
    sync_databases(hosts)
    bootstrap_keystone(values)
    say('starting Keystone, Glance, Placement and Neutron')
    uwsgi('keystone', 'keystone.wsgi.api:application', PORTS['keystone'],
          OS_KEYSTONE_CONFIG_DIR=str(ETC / 'keystone'))
    uwsgi('glance', 'glance.wsgi.api:application', PORTS['glance'],
          OS_GLANCE_CONFIG_DIR=str(ETC / 'glance'))
    uwsgi('placement', 'placement.wsgi.api:application',
          PORTS['placement'], OS_PLACEMENT_CONFIG_DIR=str(ETC / 'placement'))
    uwsgi('neutron', 'neutron.wsgi.api:application', PORTS['neutron'],
          threads=1, OS_NEUTRON_CONFIG_DIR=str(ETC / 'neutron'),
          OS_NEUTRON_CONFIG_FILES='neutron.conf;ml2_conf.ini')
    wait_for('Keystone on port %d' % PORTS['keystone'],
             lambda: answers(URLS['keystone'] + '/v3'), ['keystone'])
    admin = create_catalog(values)
    wait_for('RabbitMQ on port %d' % PORTS['rabbitmq'],
             lambda: port_open(PORTS['rabbitmq']), ['rabbitmq'])

    say('starting nova-api, nova-conductor, nova-scheduler and '
        'nova-compute on %s' % ', '.join(h.name for h in hosts))
    nova_conf = str(ETC / 'nova' / 'nova.conf')
    uwsgi('nova-api', 'nova.wsgi.osapi_compute:application', PORTS['nova'],
          OS_NOVA_CONFIG_DIR=str(ETC / 'nova'),
          OS_NOVA_CONFIG_FILES='api-paste.ini;nova.conf;nova-controller.conf')
    for binary in ('nova-conductor', 'nova-scheduler'):
        spawn(binary, [str(VENV / 'bin' / binary),
                       *nova_controller_config()])
    for host in hosts:
        for sub in ('state', 'instances', 'locks'):
            (DATA / host.name / sub).mkdir(parents=True, exist_ok=True)
        spawn('nova-compute-%s' % host.name, [
            str(VENV / 'bin' / 'nova-compute'), '--config-file', nova_conf,
            '--config-file',
            str(ETC / 'nova' / ('nova-compute-%s.conf' % host.name))])
    for name, url in (('glance', URLS['glance'] + '/v2/images'),
                      ('placement', URLS['placement']),
                      ('nova-api', URLS['nova'])):
        wait_for('%s at %s' % (name, url), lambda u=url: answers(u), [name])
    # A network list, not just any answer: it proves Neutron's database,
    # and Neutron 29 fails every port list (Nova's first call) with
    # "type object 'Port' has no attribute 'port_forwardings'" until some
    # other query has configured its database mappers.
    wait_for('Neutron to list networks', lambda: http(
        'GET', URLS['neutron'] + '/v2.0/networks', token=admin)[0] == 200,
        ['neutron'])
    image = upload_image(admin)
    flavor = create_flavor(admin)
    for host in hosts:
        # Compute needs 40 to 60 s to start; "service up" alone is not
        # enough: the scheduler needs the host's inventory in placement.
        wait_for('nova-compute on %s to report its inventory to placement'
                 % host.name, lambda h=host: compute_ready(h, admin),
                 ['nova-compute-%s' % host.name, 'nova-conductor',
                  'nova-scheduler', 'rabbitmq', 'libvirtd-%s' % host.name])
    run('nova-setup', [str(VENV / 'bin' / 'nova-manage'),
                       *nova_controller_config(), 'cell_v2',
                       'discover_hosts', '--verbose'])
    write_tempest_workspace(values, hosts, image, flavor)
    say('up in %.0f s: virt_type=%s; %s' % (
        time.monotonic() - started, virt_type, '; '.join(
            '%s: cpu_dedicated_set=%s cpu_shared_set=%s' % (
                h.name, h.cpu_dedicated_set, h.cpu_shared_set or '(none)')
            for h in hosts)))
    say('admin credentials: source %s; logs: %s' % (ETC / 'openrc', LOGS))


# ---------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------

def _sorted_pid_files() -> list[pathlib.Path]:
    def rank(path: pathlib.Path) -> int:
        for index, pattern in enumerate(ORDER):
            if re.fullmatch(pattern.replace('*', '.*'), path.stem):
                return index
        return len(ORDER)

    files = list(RUN.glob('*.pid')) if RUN.exists() else []
    return sorted(files, key=rank, reverse=True)


def destroy_guests(host: ComputeHost) -> list[str]:
    """Destroy and undefine every guest of a running libvirtd."""
    virsh = ['virsh', '--connect', host.libvirt_uri]
    listed = subprocess.run(virsh + ['list', '--all', '--name'],
                            capture_output=True, text=True, check=False)
    names = [n for n in listed.stdout.split() if n]
    for name in names:
        subprocess.run(virsh + ['destroy', name], capture_output=True,
                       check=False)
        subprocess.run(virsh + ['undefine', '--nvram', name],
                       capture_output=True, check=False)
    return names


def stray_processes() -> list[int]:
    """Processes of this tree `up` did not record: children left behind,
    and QEMU guests (libvirt clears their environment, but their command
    line names this tree's instance directories).
    """
    strays = []
    for entry in pathlib.Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / 'cmdline').read_bytes()
        except OSError:
            continue
        if ours(pid):
            strays.append(pid)
    return strays


def down() -> None:
    require_root()
    stopped = []
    guests: list[str] = []
    files = _sorted_pid_files()
    hosts = {h.name: h for h in compute_hosts()}
    for pid_file in files:
        name = pid_file.stem
        pid = read_pid(pid_file)
        if name.startswith('libvirtd-') and name[9:] in hosts and (
                pid is not None and running(pid)):
            guests += destroy_guests(hosts[name[9:]])
        if pid is not None and running(pid) and ours(pid):
            if name == 'postgresql':
                # SIGINT: PostgreSQL's fast shutdown.
                terminate(pid, signal.SIGINT)
            else:
                terminate(pid)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)  # libvirtd removes its own
    if (DATA / 'rabbitmq').exists():
        # RabbitMQ's port mapper daemonizes outside the server's group.
        subprocess.run(['epmd', '-kill'], capture_output=True, check=False,
                       env=dict(os.environ, **rabbitmq_env()))
    strays = stray_processes()
    for pid in strays:
        terminate(pid, signal.SIGKILL)
    left = stray_processes()
    say('down: stopped %d services (%s), destroyed %d guests (%s)%s' % (
        len(stopped), ', '.join(stopped) or 'none', len(guests),
        ', '.join(guests) or 'none',
        '; killed %d stray processes' % len(strays) if strays else ''))
    if left:
        raise Failed('processes of the cloud still run after down: %s' % (
            ', '.join(map(str, left))))


def status() -> int:
    files = _sorted_pid_files()[::-1]
    if not files:
        say('down (no pid files in %s)' % RUN)
        return 1
    width = max(len(f.stem) for f in files)
    down_count = 0
    for pid_file in files:
        pid = read_pid(pid_file)
        alive = pid is not None and running(pid) and ours(pid)
        down_count += not alive
        print('%-*s  %-7s  %s' % (width, pid_file.stem, pid,
                                  'running' if alive else 'NOT RUNNING'))
    return 1 if down_count else 0


# ---------------------------------------------------------------------------
# tempest
# ---------------------------------------------------------------------------

def tempest(extra: typing.Sequence[str] = ()) -> int:
    workspace = TEMPEST / 'aio'
    if not (workspace / 'etc' / 'tempest.conf').exists():
        raise Failed('no tempest workspace in %s: run `up` first' % (
            workspace))
    argv = [str(VENV / 'bin' / 'tempest'), 'run',
            '--workspace-path', str(TEMPEST / 'workspace.yaml'),
            '--workspace', 'aio', '--config-file',
            str(workspace / 'etc' / 'tempest.conf'),
            '--regex', r'^nova_emulator_threads_tempest_plugin\.',
            # One at a time: the hosts have room for one isolate guest.
            '--concurrency', '1', *extra]
    say('$ %s' % ' '.join(argv))
    return subprocess.run(argv, cwd=workspace, check=False).returncode


def test(totals: str | None) -> int:
    """up, tempest, down: down runs whatever failed before it."""
    timings = {}
    rc = 1
    try:
        started = time.monotonic()
        up()
        timings['up'] = time.monotonic() - started
        started = time.monotonic()
        rc = tempest(['--slowest'])
        timings['tempest'] = time.monotonic() - started
    except Failed as exc:
        say('FAILED: %s' % exc)
    finally:
        started = time.monotonic()
        try:
            down()
        except Failed as exc:
            say('FAILED: %s' % exc)
            rc = rc or 1
        timings['down'] = time.monotonic() - started
    say('timings: %s' % ', '.join('%s %.0f s' % item
                                  for item in timings.items()))
    counts = _last_run_counts()
    if counts is not None:
        say('tempest: %d passed, %d failed, %d skipped' % counts)
        if totals:
            with open(totals, 'a') as handle:
                handle.write('%d %d %d\n' % counts)
    elif totals:
        say('tempest: no test ran')
        rc = rc or 1
    return rc


def _last_run_counts() -> tuple[int, int, int] | None:
    """(passed, failed, skipped) of the workspace's last tempest run."""
    workspace = TEMPEST / 'aio'
    if not (workspace / '.stestr').exists():
        return None
    last = subprocess.run(
        [str(VENV / 'bin' / 'stestr'), 'last', '--subunit'], cwd=workspace,
        capture_output=True, check=False)
    if last.returncode not in (0, 1) or not last.stdout:
        return None
    stats = subprocess.run(
        [str(VENV / 'bin' / 'subunit-stats'), '--no-passthrough'],
        input=last.stdout, capture_output=True, check=False).stdout.decode()
    found = dict(re.findall(r'^(\w+) tests:\s+(\d+)', stats, re.M))
    return (int(found.get('Passed', 0)), int(found.get('Failed', 0)),
            int(found.get('Skipped', 0)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description='An all-in-one OpenStack cloud with '
                    'nova-emulator-threads on this machine.')
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('install', help='Debian packages and the venv')
    commands.add_parser('up', help='start the cloud (fresh state)')
    commands.add_parser('down', help='stop what up started, destroy guests')
    commands.add_parser('status', help='what runs')
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
            install()
        elif args.command == 'up':
            try:
                up()
            except BaseException:
                say('up failed: stopping what it started')
                down()
                raise
        elif args.command == 'down':
            down()
        elif args.command == 'status':
            return status()
        elif args.command == 'tempest':
            return tempest(args.args)
        else:
            return test(args.totals)
    except Failed as exc:
        say('FAILED: %s' % exc)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
