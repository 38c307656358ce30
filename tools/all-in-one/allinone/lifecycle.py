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

"""`up`, `down`, `status`, and `restart` and `kill` of one service."""

import datetime
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
import typing

from allinone import configs
from allinone import install
from allinone import layout
from allinone import processes
from allinone import services
from allinone import starts

# Order matters for `down`: the reverse of this.
ORDER = ('postgresql', 'rabbitmq', 'keystone', 'glance', 'placement',
         'neutron', 'virtlogd-*', 'libvirtd-*', 'nova-api',
         'nova-conductor', 'nova-scheduler', 'nova-compute-*')


def start(every: dict[str, starts.Start], names: typing.Sequence[str],
          cloud: starts.Cloud) -> None:
    """Start services side by side, then wait until each one serves."""
    for name in names:
        every[name].spawn()
    for name in names:
        every[name].ready(cloud)


def refuse_if_up() -> None:
    for pid_file in layout.RUN.glob('*.pid') if layout.RUN.exists() else ():
        pid = processes.read_pid(pid_file)
        if pid is not None and processes.running(pid) and processes.ours(pid):
            raise layout.Failed('the cloud is already up (%s runs as pid %d); '
                                'run `down` first' % (pid_file.stem, pid))


def start_libvirt(every: dict[str, starts.Start],
                  hosts: typing.Sequence[layout.ComputeHost],
                  cloud: starts.Cloud) -> str:
    """The compute hosts' libvirt daemons, first: the configuration waits
    for the one setting they decide, the virt type, which this returns.
    """
    layout.say('starting libvirtd for %s' % ', '.join(h.name for h in hosts))
    start(every, [name for h in hosts for name in (
        'virtlogd-' + h.name, 'libvirtd-' + h.name)], cloud)
    virt_type = services.choose_virt_type(hosts[0])
    layout.say('virt_type = %s (%s)' % (virt_type, {
        'kvm': 'KVM works here, nested',
        'qemu': 'KVM does not work here: TCG emulation'}[virt_type]))
    return virt_type


def up() -> None:
    install.require_root()
    refuse_if_up()
    started = time.monotonic()
    install.install()
    hosts = layout.compute_hosts()
    for path in (layout.ETC, layout.RUN, layout.DATA, layout.TEMPEST,
                 layout.LOGS):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    values = configs.settings()
    every = starts.starts(hosts)
    cloud = starts.Cloud(values['admin_password'])

    virt_type = start_libvirt(every, hosts, cloud)
    configs.write_configs(values, hosts, virt_type)

    layout.say('starting PostgreSQL and RabbitMQ')
    services.init_postgresql()
    start(every, ['postgresql'], cloud)
    services.create_databases(values['db_password'])
    every['rabbitmq'].spawn()
    layout.say('creating the databases\' schemas')
    services.sync_databases(values)
    services.bootstrap_keystone(values)

    layout.say('starting Keystone, Glance, Placement and Neutron')
    for name in ('keystone', 'glance', 'placement', 'neutron'):
        every[name].spawn()
    every['keystone'].ready(cloud)
    admin = services.create_catalog(values)
    every['rabbitmq'].ready(cloud)

    layout.say('starting nova-api, nova-conductor, nova-scheduler and '
               'nova-compute on %s' % ', '.join(h.name for h in hosts))
    nova = ['nova-api', 'nova-conductor', 'nova-scheduler'] + [
        'nova-compute-' + h.name for h in hosts]
    for name in nova:
        every[name].spawn()
    for name in ('glance', 'placement', 'nova-api', 'neutron'):
        every[name].ready(cloud)
    image = services.upload_image(admin)
    flavor = services.create_flavor(admin)
    for name in nova:
        every[name].ready(cloud)
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
# restart and kill: faults on purpose
# ---------------------------------------------------------------------------


class UnknownService(Exception):
    """A service name that is not one of the cloud's (bad input)."""


def _service(name: str) -> tuple[starts.Start, int | None]:
    """The start of a service and its pid while it runs (else None)."""
    every = starts.starts(layout.compute_hosts())
    if name not in every:
        raise UnknownService(
            'service %r is not one of the cloud\'s; allowed: %s' % (
                name, ', '.join(every)))
    pid_file = layout.RUN / (name + '.pid')
    if not pid_file.exists():
        raise layout.Failed('the cloud is not up: no %s' % pid_file)
    pid = processes.read_pid(pid_file)
    if pid is None or not processes.running(pid) or not processes.ours(pid):
        return every[name], None
    return every[name], pid


def kill(name: str) -> None:
    """SIGKILL a service, as a crash would; its pid file stays, so
    `status` shows it NOT RUNNING and `restart` brings it back.
    """
    service, pid = _service(name)
    install.require_root()
    if pid is None:
        raise layout.Failed('%s does not run' % name)
    processes.terminate([pid], signal.SIGKILL, group=service.group)
    layout.say('killed %s (pid %d)' % (name, pid))


def restart(name: str) -> None:
    """Stop a service if it runs, start it again exactly as `up` did,
    and wait until it serves again.
    """
    service, pid = _service(name)
    install.require_root()
    if pid is not None:
        if not processes.terminate([pid], service.stop_signal,
                                   group=service.group):
            raise layout.Failed('%s (pid %d) did not stop' % (name, pid))
    # Nova's service reports carry UTC times without a zone.
    since = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    started = time.monotonic()
    service.spawn()
    service.ready(starts.Cloud(starts.admin_password(), since))
    layout.say('restarted %s (%s) in %.0f s' % (
        name, 'was pid %d' % pid if pid else 'was not running',
        time.monotonic() - started))


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
