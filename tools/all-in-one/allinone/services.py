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

"""Each service of the cloud: how it is set up, started and known ready."""

import concurrent.futures
import datetime
import pathlib
import shutil
import struct
import subprocess
import sys
import time
import typing

from allinone import configs
from allinone import layout
from allinone import processes
from allinone import rest

PG_BIN = pathlib.Path('/usr/lib/postgresql/15/bin')
RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'
DATABASES = ('keystone', 'glance', 'placement', 'neutron', 'nova_api',
             'nova_cell0', 'nova_cell1')
# Placement microversion for the inventory checks.
PLACEMENT_VERSION = 'placement 1.39'
AS_POSTGRES = ['setpriv', '--reuid=postgres', '--regid=postgres',
               '--init-groups']


# ---------------------------------------------------------------------------
# The services, in the order `up` starts them
# ---------------------------------------------------------------------------


def init_postgresql() -> None:
    """A private cluster: sqlite gives "database is locked" once several
    Nova processes share it.
    """
    pgdata = postgresql_data_dir()
    shutil.rmtree(layout.POSTGRESQL, ignore_errors=True)
    layout.POSTGRESQL.mkdir(mode=0o755, parents=True)
    for path in (pgdata, postgresql_socket_dir()):
        path.mkdir(mode=0o700)
        shutil.chown(path, 'postgres', 'postgres')
    # The superuser only through the Unix socket, as the postgres user;
    # the services log in over TCP with the password `up` made.
    processes.run('postgresql', AS_POSTGRES + [
        str(PG_BIN / 'initdb'), '--pgdata', str(pgdata), '--username',
        'postgres', '--auth-local', 'peer', '--auth-host', 'scram-sha-256',
        '--no-sync', '--encoding', 'UTF8'])


def start_postgresql() -> None:
    processes.spawn('postgresql', AS_POSTGRES + [
        str(PG_BIN / 'postgres'), '-D', str(postgresql_data_dir()),
        '-c', 'listen_addresses=127.0.0.1',
        '-p', str(layout.PORTS['postgres']),
        '-k', str(postgresql_socket_dir()),
        # A throwaway cloud: durability buys nothing here.
        '-c', 'fsync=off', '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off', '-c', 'max_connections=300'])


def postgresql_data_dir() -> pathlib.Path:
    return layout.POSTGRESQL / 'data'


def postgresql_socket_dir() -> pathlib.Path:
    return layout.POSTGRESQL / 'run'


def create_databases(password: str) -> None:
    psql = AS_POSTGRES + [
        'psql', '--quiet', '--set', 'ON_ERROR_STOP=1',
        '--host', str(postgresql_socket_dir()),
        '--port', str(layout.PORTS['postgres']), '--dbname', 'postgres',
        '--command']
    deadline = time.monotonic() + 30
    while subprocess.run(psql + ['SELECT 1'], capture_output=True,
                         check=False).returncode != 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    processes.run('postgresql', psql + [
        "CREATE ROLE aio LOGIN PASSWORD '%s'" % password])
    for name in DATABASES:
        processes.run('postgresql',
                      psql + ['CREATE DATABASE %s OWNER aio' % name])


def start_rabbitmq() -> None:
    (layout.DATA / 'rabbitmq').mkdir(parents=True, exist_ok=True)
    processes.spawn('rabbitmq', [RABBITMQ_SERVER], **rabbitmq_env())


def rabbitmq_env() -> dict[str, str]:
    base = layout.DATA / 'rabbitmq'
    return {
        'HOME': str(base),  # the Erlang cookie
        'RABBITMQ_NODENAME': 'aio@localhost',
        'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
        'RABBITMQ_NODE_PORT': str(layout.PORTS['rabbitmq']),
        'RABBITMQ_DIST_PORT': str(layout.PORTS['rabbitmq_dist']),
        'RABBITMQ_CONFIG_FILE': str(layout.ETC / 'rabbitmq' / 'rabbitmq'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': str(
            layout.ETC / 'rabbitmq' / 'enabled_plugins'),
        'RABBITMQ_MNESIA_BASE': str(base / 'mnesia'),
        'RABBITMQ_LOG_BASE': str(layout.LOGS),
        'RABBITMQ_PID_FILE': str(base / 'rabbitmq.pid'),
        'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS':
            '-kernel inet_dist_use_interface {127,0,0,1}',
        'ERL_EPMD_ADDRESS': '127.0.0.1',
        'ERL_EPMD_PORT': str(layout.PORTS['epmd']),
    }


def uwsgi(name: str, module: str, port: int, threads: int = 4,
          **env: str) -> None:
    processes.spawn(name, [
        str(layout.VENV / 'bin' / 'uwsgi'), '--http-socket',
        '127.0.0.1:%d' % port, '--module', module, '--master',
        '--processes', '1', '--threads', str(threads), '--enable-threads',
        '--lazy-apps',
        '--die-on-term', '--need-app', '--buffer-size', '65535',
        # Without it clients see ConnectionResetError on reused sockets.
        '--add-header', 'Connection: close',
        '--disable-logging'], **env)


def nova_controller_config() -> list[str]:
    return ['--config-file', str(layout.ETC / 'nova' / 'nova.conf'),
            '--config-file', str(layout.ETC / 'nova' / 'nova-controller.conf')]


def sync_databases(values: dict[str, typing.Any]) -> None:
    """Each service's schema, the services side by side."""
    bin_ = layout.VENV / 'bin'
    nova = [str(bin_ / 'nova-manage'), *nova_controller_config()]
    cell0 = 'postgresql+psycopg2://aio:%s@127.0.0.1:%d/nova_cell0'
    keystone = [str(bin_ / 'keystone-manage'), '--config-file',
                str(layout.ETC / 'keystone' / 'keystone.conf')]
    neutron = [str(bin_ / 'neutron-db-manage'), '--config-file',
               str(layout.ETC / 'neutron' / 'neutron.conf'), '--config-file',
               str(layout.ETC / 'neutron' / 'ml2_conf.ini')]
    steps = {
        'keystone-setup': [
            keystone + ['db_sync'],
            keystone + ['fernet_setup', '--keystone-user', 'root',
                        '--keystone-group', 'root'],
            keystone + ['credential_setup', '--keystone-user', 'root',
                        '--keystone-group', 'root'],
        ],
        'glance-setup': [[str(bin_ / 'glance-manage'), '--config-file',
                          str(layout.ETC / 'glance' / 'glance-api.conf'),
                          'db_sync']],
        'placement-setup': [[str(bin_ / 'placement-manage'),
                             '--config-file',
                             str(layout.ETC / 'placement' / 'placement.conf'),
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
                    cell0 % (values['db_password'], layout.PORTS['postgres'])],
            nova + ['cell_v2', 'create_cell', '--name', 'cell1'],
            nova + ['db', 'sync'],
        ],
    }
    for name in ('keystone', 'glance', 'placement', 'neutron', 'nova'):
        (layout.DATA / name).mkdir(parents=True, exist_ok=True)

    def chain(name: str) -> str | None:
        try:
            for command in steps[name]:
                processes.run(name, command)
        except layout.Failed as exc:
            return str(exc)
        return None

    # Each service's steps in order; the services side by side.
    with concurrent.futures.ThreadPoolExecutor(len(steps)) as pool:
        failures = [failure for failure in pool.map(chain, steps) if failure]
    if failures:
        raise layout.Failed('database setup failed: %s' % '; '.join(failures))


def bootstrap_keystone(values: dict[str, typing.Any]) -> None:
    processes.run('keystone-setup', [
        str(layout.VENV / 'bin' / 'keystone-manage'), '--config-file',
        str(layout.ETC / 'keystone' / 'keystone.conf'), 'bootstrap',
        '--bootstrap-password', values['admin_password'],
        '--bootstrap-admin-url', layout.URLS['keystone'] + '/v3',
        '--bootstrap-internal-url', layout.URLS['keystone'] + '/v3',
        '--bootstrap-public-url', layout.URLS['keystone'] + '/v3',
        '--bootstrap-region-id', 'RegionOne'])


def create_catalog(values: dict[str, typing.Any]) -> str:
    """The service project, users and endpoints; returns an admin token."""
    keystone = layout.URLS['keystone'] + '/v3'
    admin = rest.token('admin', values['admin_password'], 'admin')
    project = rest.api('POST', keystone + '/projects', {'project': {
        'name': 'service', 'domain_id': 'default'}}, admin)['project']['id']
    roles = {role['name']: role['id'] for role in rest.api(
        'GET', keystone + '/roles', token=admin)['roles']}
    if 'service' not in roles:
        roles['service'] = rest.api('POST', keystone + '/roles', {'role': {
            'name': 'service'}}, admin)['role']['id']
    for user in ('nova', 'placement', 'glance', 'neutron'):
        user_id = rest.api('POST', keystone + '/users', {'user': {
            'name': user, 'password': values['service_password'],
            'domain_id': 'default', 'default_project_id': project}},
            admin)['user']['id']
        for role in ('admin', 'service'):
            rest.api('PUT', keystone + '/projects/%s/users/%s/roles/%s' % (
                project, user_id, roles[role]), token=admin)
    for kind, name, url in (('compute', 'nova', layout.URLS['nova']),
                            ('placement', 'placement',
                             layout.URLS['placement']),
                            ('image', 'glance', layout.URLS['glance']),
                            ('network', 'neutron', layout.URLS['neutron'])):
        service = rest.api('POST', keystone + '/services', {'service': {
            'type': kind, 'name': name}}, admin)['service']['id']
        for interface in ('public', 'internal'):
            rest.api('POST', keystone + '/endpoints', {'endpoint': {
                'service_id': service, 'interface': interface,
                'url': url, 'region_id': 'RegionOne'}}, admin)
    return admin


def start_libvirt_daemon(host: layout.ComputeHost, daemon: str) -> None:
    """virtlogd or libvirtd of one compute host, in the host's private
    mount and UTS namespaces: their own /etc/libvirt, /run/libvirt,
    /var/lib/libvirt and /var/cache/libvirt (directories of
    ``host.tree``), and their own host name, which libvirt reports and
    Nova uses as the node name.

    The namespaces are the ones the host's other daemon or guests live
    in when there are any (a restart joins them), new ones otherwise.
    """
    pid_file = layout.RUN / ('%s-%s.pid' % (daemon, host.name))
    command = '%s --daemon --config /etc/libvirt/%s.conf --pid-file %s' % (
        daemon, daemon, pid_file)
    holder = namespace_holder(host)
    if holder is not None:
        processes.run('%s-%s' % (daemon, host.name), [
            'nsenter', '--target', str(holder), '--mount', '--uts',
            'sh', '-c', command])
        return
    # Its guests' QEMU logs go with the other logs.
    private = {host.tree / 'etc': '/etc/libvirt',
               host.tree / 'run': '/run/libvirt',
               host.tree / 'lib': '/var/lib/libvirt',
               host.tree / 'cache': '/var/cache/libvirt',
               layout.LOGS / ('libvirt-' + host.name): '/var/log/libvirt'}
    for source in private:
        source.mkdir(parents=True, exist_ok=True)
    values = {'host': host.name, 'logs': layout.LOGS}
    for conf in ('libvirtd.conf', 'virtlogd.conf', 'qemu.conf'):
        configs.render(conf, host.tree / 'etc' / conf, values)
    lines = ['set -e', 'hostname %s' % host.name]
    for source, target in private.items():
        lines += ['mkdir -p %s' % target,
                  'mount --bind %s %s' % (source, target)]
    processes.run('%s-%s' % (daemon, host.name), [
        'unshare', '--mount', '--uts', '--propagation', 'private',
        'sh', '-c', '\n'.join(lines + [command])])


def namespace_holder(host: layout.ComputeHost) -> int | None:
    """A process in the compute host's private namespaces: one of its
    libvirt daemons, else one of its QEMU guests (whose command line
    names the host's instance directory). None when nothing holds them.
    """
    own = pathlib.Path('/proc/self/ns/mnt').readlink()
    candidates = [processes.read_pid(layout.RUN / ('%s-%s.pid' % (
        daemon, host.name))) for daemon in ('virtlogd', 'libvirtd')]
    instances = ('%s/' % (layout.DATA / host.name)).encode()
    for entry in pathlib.Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                if instances in (entry / 'cmdline').read_bytes():
                    candidates.append(int(entry.name))
            except OSError:
                pass
    for pid in candidates:
        if pid is None or not processes.running(pid):
            continue
        try:
            if pathlib.Path('/proc/%d/ns/mnt' % pid).readlink() != own:
                return pid
        except OSError:
            pass
    return None


def libvirt_answers(host: layout.ComputeHost) -> bool:
    return subprocess.run(
        ['virsh', '--connect', host.libvirt_uri, 'hostname'],
        capture_output=True, check=False).returncode == 0


def choose_virt_type(host: layout.ComputeHost) -> str:
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
    glance = layout.URLS['glance'] + '/v2/images'
    image = str(rest.api('POST', glance, {
        'name': 'aio-mbr', 'disk_format': 'raw', 'container_format': 'bare',
        'visibility': 'public'}, admin)['id'])
    rest.api('PUT', '%s/%s/file' % (glance, image), boot_image(), admin)
    processes.wait_for('the image upload', lambda: rest.api(
        'GET', '%s/%s' % (glance, image), token=admin)['status'] == 'active',
        ['glance'], 60)
    return image


def create_flavor(admin: str) -> str:
    """The small unpinned flavor tempest's configuration asks for; the
    plugin's tests create their own pinned flavors.
    """
    return str(rest.api('POST', layout.URLS['nova'] + '/flavors', {'flavor': {
        'name': 'aio.tiny', 'ram': 128, 'vcpus': 1, 'disk': 1}},
        admin)['flavor']['id'])


def service_reported(binary: str, host: str | None, admin: str,
                     since: datetime.datetime | None) -> bool:
    """Nova lists the service up (on ``host``, any host if None), and it
    reported after ``since`` (UTC) if given: a restarted service's own
    report, not the last one of the process it replaced.
    """
    query = '?binary=%s' % binary + ('&host=%s' % host if host else '')
    for service in rest.api('GET', layout.URLS['nova'] + '/os-services'
                            + query, token=admin)['services']:
        if service['state'] != 'up':
            continue
        if since is None or (
                service['updated_at'] and datetime.datetime.fromisoformat(
                    service['updated_at']).replace(tzinfo=None) >= since):
            return True
    return False


def compute_ready(host: layout.ComputeHost, admin: str,
                  since: datetime.datetime | None = None) -> bool:
    """The host's service is up and placement has its PCPU inventory."""
    if not service_reported('nova-compute', host.name, admin, since):
        return False
    placement = layout.URLS['placement'] + '/resource_providers'
    version = {'OpenStack-API-Version': PLACEMENT_VERSION}
    providers = rest.api('GET', placement + '?name=' + host.name,
                         token=admin, **version)['resource_providers']
    for provider in providers:
        inventories = rest.api(
            'GET', '%s/%s/inventories' % (placement, provider['uuid']),
            token=admin, **version)['inventories']
        if 'PCPU' in inventories:
            return True
    return False


def write_tempest_workspace(values: dict[str, typing.Any],
                            hosts: typing.Sequence[layout.ComputeHost],
                            image: str, flavor: str) -> None:
    workspace = layout.TEMPEST / 'aio'
    processes.run('tempest', [
        str(layout.VENV / 'bin' / 'tempest'), 'init', '--name', 'aio',
        '--workspace-path', str(layout.TEMPEST / 'workspace.yaml'),
        str(workspace)])
    share = hosts[1]
    configs.render('tempest.conf', workspace / 'etc' / 'tempest.conf', dict(
        values, image_id=image, flavor_id=flavor,
        compute_count=len(hosts),
        libvirt_uris=','.join('%s:%s' % (h.name, h.libvirt_uri)
                              for h in hosts),
        share_host=share.name,
        share_host_cpu_shared_set=share.cpu_shared_set,
        # The fault tests kill and restart services with `aio.py`.
        fault_command='%s %s' % (sys.executable, layout.HERE / 'aio.py'),
        nova_manage_command=' '.join([
            str(layout.VENV / 'bin' / 'nova-manage'),
            *nova_controller_config()])))
