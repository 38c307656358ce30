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

"""`up`, `down` and `status` of the whole cloud."""

import functools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time

from allinone import configs
from allinone import install
from allinone import layout
from allinone import processes
from allinone import rest
from allinone import services

# Order matters for `down`: the reverse of this.
ORDER = ('postgresql', 'rabbitmq', 'keystone', 'glance', 'placement',
         'neutron', 'virtlogd-*', 'libvirtd-*', 'nova-api',
         'nova-conductor', 'nova-scheduler', 'nova-compute-*')


def up() -> None:
    install.require_root()
    for pid_file in layout.RUN.glob('*.pid') if layout.RUN.exists() else ():
        pid = processes.read_pid(pid_file)
        if pid is not None and processes.running(pid) and processes.ours(pid):
            raise layout.Failed('the cloud is already up (%s runs as pid %d); '
                                'run `down` first' % (pid_file.stem, pid))
    started = time.monotonic()
    install.install()
    hosts = layout.compute_hosts()
    for path in (layout.ETC, layout.RUN, layout.DATA, layout.TEMPEST,
                 layout.LOGS):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    values = configs.settings()

    layout.say('starting libvirtd for %s' % ', '.join(h.name for h in hosts))
    for host in hosts:
        services.start_libvirtd(host)
    for host in hosts:
        processes.wait_for('libvirtd of %s' % host.name,
                           functools.partial(services.libvirt_answers, host),
                           ['libvirtd-%s' % host.name], 60)
    # The one setting the configuration waits for.
    virt_type = services.choose_virt_type(hosts[0])
    layout.say('virt_type = %s (%s)' % (virt_type, {
        'kvm': 'KVM works here, nested',
        'qemu': 'KVM does not work here: TCG emulation'}[virt_type]))
    configs.write_configs(values, hosts, virt_type)

    layout.say('starting PostgreSQL and RabbitMQ')
    services.start_postgresql()
    services.create_databases(values['db_password'])
    services.start_rabbitmq()

    layout.say('creating the databases\' schemas')
    services.sync_databases(values)
    services.bootstrap_keystone(values)
    layout.say('starting Keystone, Glance, Placement and Neutron')
    services.uwsgi('keystone', 'keystone.wsgi.api:application',
                   layout.PORTS['keystone'],
                   OS_KEYSTONE_CONFIG_DIR=str(layout.ETC / 'keystone'))
    services.uwsgi('glance', 'glance.wsgi.api:application',
                   layout.PORTS['glance'],
                   OS_GLANCE_CONFIG_DIR=str(layout.ETC / 'glance'))
    services.uwsgi('placement', 'placement.wsgi.api:application',
                   layout.PORTS['placement'],
                   OS_PLACEMENT_CONFIG_DIR=str(layout.ETC / 'placement'))
    services.uwsgi('neutron', 'neutron.wsgi.api:application',
                   layout.PORTS['neutron'], threads=1,
                   OS_NEUTRON_CONFIG_DIR=str(layout.ETC / 'neutron'),
                   OS_NEUTRON_CONFIG_FILES='neutron.conf;ml2_conf.ini')
    processes.wait_for('Keystone on port %d' % layout.PORTS['keystone'],
                       lambda: rest.answers(layout.URLS['keystone'] + '/v3'),
                       ['keystone'])
    admin = services.create_catalog(values)
    processes.wait_for('RabbitMQ on port %d' % layout.PORTS['rabbitmq'],
                       lambda: processes.port_open(layout.PORTS['rabbitmq']),
                       ['rabbitmq'])

    layout.say('starting nova-api, nova-conductor, nova-scheduler and '
               'nova-compute on %s' % ', '.join(h.name for h in hosts))
    nova_conf = str(layout.ETC / 'nova' / 'nova.conf')
    services.uwsgi('nova-api', 'nova.wsgi.osapi_compute:application',
                   layout.PORTS['nova'],
                   OS_NOVA_CONFIG_DIR=str(layout.ETC / 'nova'),
                   OS_NOVA_CONFIG_FILES=(
                       'api-paste.ini;nova.conf;nova-controller.conf'))
    for binary in ('nova-conductor', 'nova-scheduler'):
        processes.spawn(binary, [str(layout.VENV / 'bin' / binary),
                                 *services.nova_controller_config()])
    for host in hosts:
        for sub in ('state', 'instances', 'locks'):
            (layout.DATA / host.name / sub).mkdir(parents=True, exist_ok=True)
        processes.spawn('nova-compute-%s' % host.name, [
            str(layout.VENV / 'bin' / 'nova-compute'),
            '--config-file', nova_conf,
            '--config-file',
            str(layout.ETC / 'nova' / ('nova-compute-%s.conf' % host.name))])
    for name, url in (('glance', layout.URLS['glance'] + '/v2/images'),
                      ('placement', layout.URLS['placement']),
                      ('nova-api', layout.URLS['nova'])):
        processes.wait_for('%s at %s' % (name, url),
                           functools.partial(rest.answers, url), [name])
    # A network list, not just any answer: it proves Neutron's database,
    # and Neutron 29 fails every port list (Nova's first call) with
    # "type object 'Port' has no attribute 'port_forwardings'" until some
    # other query has configured its database mappers.
    processes.wait_for('Neutron to list networks', lambda: rest.http(
        'GET', layout.URLS['neutron'] + '/v2.0/networks',
        token=admin)[0] == 200,
        ['neutron'])
    image = services.upload_image(admin)
    flavor = services.create_flavor(admin)
    for host in hosts:
        # Compute needs 40 to 60 s to start; "service up" alone is not
        # enough: the scheduler needs the host's inventory in placement.
        processes.wait_for(
            'nova-compute on %s to report its inventory to placement'
            % host.name,
            functools.partial(services.compute_ready, host, admin),
            ['nova-compute-%s' % host.name, 'nova-conductor',
             'nova-scheduler', 'rabbitmq', 'libvirtd-%s' % host.name])
    processes.run('nova-setup', [str(layout.VENV / 'bin' / 'nova-manage'),
                                 *services.nova_controller_config(), 'cell_v2',
                                 'discover_hosts', '--verbose'])
    services.write_tempest_workspace(values, hosts, image, flavor)
    layout.say('up in %.0f s: virt_type=%s; %s' % (
        time.monotonic() - started, virt_type, '; '.join(
            '%s: cpu_dedicated_set=%s cpu_shared_set=%s' % (
                h.name, h.cpu_dedicated_set, h.cpu_shared_set or '(none)')
            for h in hosts)))
    layout.say('admin credentials: source %s; logs: %s' % (
        layout.ETC / 'openrc', layout.LOGS))


# ---------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------


def _sorted_pid_files() -> list[pathlib.Path]:
    def rank(path: pathlib.Path) -> int:
        for index, pattern in enumerate(ORDER):
            if re.fullmatch(pattern.replace('*', '.*'), path.stem):
                return index
        return len(ORDER)

    files = list(layout.RUN.glob('*.pid')) if layout.RUN.exists() else []
    return sorted(files, key=rank, reverse=True)


def destroy_guests(host: layout.ComputeHost) -> list[str]:
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
    return [int(entry.name) for entry in pathlib.Path('/proc').iterdir()
            if entry.name.isdigit() and int(entry.name) != os.getpid()
            and processes.ours(int(entry.name))]


def down() -> None:
    install.require_root()
    hosts = {h.name: h for h in layout.compute_hosts()}
    owned: dict[str, int] = {}
    for pid_file in _sorted_pid_files():
        pid = processes.read_pid(pid_file)
        if pid is not None and processes.running(pid) and processes.ours(pid):
            owned[pid_file.stem] = pid
        pid_file.unlink(missing_ok=True)  # libvirtd removes its own
    # Nova's services first, together: each takes seconds to stop.
    nova = [name for name in owned if name.startswith('nova-')]
    processes.terminate([owned[name] for name in nova])
    guests = []
    for name in owned:
        host = hosts.get(name.removeprefix('libvirtd-'))
        if name.startswith('libvirtd-') and host is not None:
            guests += destroy_guests(host)
    for name, pid in owned.items():
        if name not in nova:
            # SIGINT: PostgreSQL's fast shutdown.
            processes.terminate([pid], signal.SIGINT if name == 'postgresql'
                                else signal.SIGTERM)
    if (layout.DATA / 'rabbitmq').exists():
        # RabbitMQ's port mapper daemonizes outside the server's group.
        subprocess.run(['epmd', '-kill'], capture_output=True, check=False,
                       env=dict(os.environ, **services.rabbitmq_env()))
    strays = stray_processes()
    processes.terminate(strays, signal.SIGKILL)
    left = stray_processes()
    layout.say('down: stopped %d services (%s), destroyed %d guests (%s)%s' % (
        len(owned), ', '.join(owned) or 'none', len(guests),
        ', '.join(guests) or 'none',
        '; killed %d stray processes' % len(strays) if strays else ''))
    if left:
        raise layout.Failed(
            'processes of the cloud still run after down: %s' % (
                ', '.join(map(str, left))))


def status() -> int:
    files = _sorted_pid_files()[::-1]
    if not files:
        layout.say('down (no pid files in %s)' % layout.RUN)
        return 1
    width = max(len(f.stem) for f in files)
    down_count = 0
    for pid_file in files:
        pid = processes.read_pid(pid_file)
        alive = (pid is not None and processes.running(pid)
                 and processes.ours(pid))
        down_count += not alive
        print('%-*s  %-7s  %s' % (width, pid_file.stem, pid,
                                  'running' if alive else 'NOT RUNNING'))
    return 1 if down_count else 0
