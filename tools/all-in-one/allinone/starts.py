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

"""Each long-running service of the cloud as one named start.

`up` runs these starts once; `restart` and `kill` use the same ones, so a
restarted service comes back exactly as `up` started it: the same
command, configuration, namespaces, log and pid file. The names are the
pid files' names, which `status` prints.
"""

import dataclasses
import datetime
import functools
import signal
import typing

from allinone import configs
from allinone import layout
from allinone import processes
from allinone import rest
from allinone import services


class Cloud:
    """What a start's readiness check needs of the running cloud."""

    def __init__(self, admin_password: str,
                 since: datetime.datetime | None = None) -> None:
        self._admin_password = admin_password
        # Restart: Nova's services must have reported after this (UTC).
        self.since = since

    @functools.cached_property
    def admin(self) -> str:
        """An admin token, asked for once, when first needed."""
        return rest.token('admin', self._admin_password, 'admin')


@dataclasses.dataclass(frozen=True)
class Start:
    """One service: how it starts and how it is known to serve."""

    name: str
    spawn: typing.Callable[[], None]
    ready: typing.Callable[[Cloud], None]
    # Whether stopping or killing it signals its whole process group.
    # Not for libvirt's daemons: their guests must outlive them, as with
    # systemd's KillMode=process for libvirtd.
    group: bool = True
    # The signal that stops it cleanly (PostgreSQL: its fast shutdown).
    stop_signal: int = signal.SIGTERM


# Name -> (WSGI application, port, threads, environment). Neutron gets
# one thread: its mappers are not configured thread-safely at start.
UWSGI_APPS: dict[str, tuple[str, int, int, dict[str, str]]] = {
    'keystone': ('keystone.wsgi.api:application', layout.PORTS['keystone'],
                 4, {'OS_KEYSTONE_CONFIG_DIR': str(layout.ETC / 'keystone')}),
    'glance': ('glance.wsgi.api:application', layout.PORTS['glance'], 4,
               {'OS_GLANCE_CONFIG_DIR': str(layout.ETC / 'glance')}),
    'placement': ('placement.wsgi.api:application',
                  layout.PORTS['placement'], 4,
                  {'OS_PLACEMENT_CONFIG_DIR': str(layout.ETC / 'placement')}),
    'neutron': ('neutron.wsgi.api:application', layout.PORTS['neutron'], 1,
                {'OS_NEUTRON_CONFIG_DIR': str(layout.ETC / 'neutron'),
                 'OS_NEUTRON_CONFIG_FILES': 'neutron.conf;ml2_conf.ini'}),
    'nova-api': ('nova.wsgi.osapi_compute:application', layout.PORTS['nova'],
                 4, {'OS_NOVA_CONFIG_DIR': str(layout.ETC / 'nova'),
                     'OS_NOVA_CONFIG_FILES':
                         'api-paste.ini;nova.conf;nova-controller.conf'}),
}
# What each API answers once it serves.
READY_URLS = {
    'keystone': layout.URLS['keystone'] + '/v3',
    'glance': layout.URLS['glance'] + '/v2/images',
    'placement': layout.URLS['placement'],
    'nova-api': layout.URLS['nova'],
}


def _port(name: str, port: int) -> typing.Callable[[Cloud], None]:
    return lambda cloud: processes.wait_for(
        '%s on port %d' % (name, port),
        lambda: processes.port_open(port), [name], 60)


def _uwsgi(name: str) -> Start:
    module, port, threads, env = UWSGI_APPS[name]

    def ready(cloud: Cloud) -> None:
        if name == 'neutron':
            # A network list, not just any answer: it proves Neutron's
            # database, and Neutron 29 fails every port list (Nova's
            # first call) with "type object 'Port' has no attribute
            # 'port_forwardings'" until some other query has configured
            # its database mappers.
            processes.wait_for('Neutron to list networks', lambda: rest.http(
                'GET', layout.URLS['neutron'] + '/v2.0/networks',
                token=cloud.admin)[0] == 200, [name])
        else:
            processes.wait_for(
                '%s at %s' % (name, READY_URLS[name]),
                functools.partial(rest.answers, READY_URLS[name]), [name])

    return Start(name, functools.partial(
        services.uwsgi, name, module, port, threads, **env), ready)


def _nova_service(binary: str) -> Start:
    def spawn() -> None:
        processes.spawn(binary, [str(layout.VENV / 'bin' / binary),
                                 *services.nova_controller_config()])

    def ready(cloud: Cloud) -> None:
        # At `up` the computes' wait proves conductor and scheduler.
        if cloud.since is not None:
            processes.wait_for(
                '%s to report to Nova' % binary, functools.partial(
                    services.service_reported, binary, None, cloud.admin,
                    cloud.since), [binary, 'rabbitmq'])

    return Start(binary, spawn, ready)


def _nova_compute(host: layout.ComputeHost) -> Start:
    name = 'nova-compute-%s' % host.name

    def spawn() -> None:
        for sub in ('state', 'instances', 'locks'):
            (layout.DATA / host.name / sub).mkdir(parents=True, exist_ok=True)
        processes.spawn(name, [
            str(layout.VENV / 'bin' / 'nova-compute'),
            '--config-file', str(layout.ETC / 'nova' / 'nova.conf'),
            '--config-file',
            str(layout.ETC / 'nova' / ('nova-compute-%s.conf' % host.name))])

    def ready(cloud: Cloud) -> None:
        # Compute needs 40 to 60 s to start; "service up" alone is not
        # enough: the scheduler needs the host's inventory in placement,
        # and after a restart the old process's last report does not
        # count.
        processes.wait_for(
            'nova-compute on %s to report its inventory to placement'
            % host.name,
            functools.partial(services.compute_ready, host, cloud.admin,
                              cloud.since),
            [name, 'nova-conductor', 'nova-scheduler', 'rabbitmq',
             'libvirtd-%s' % host.name])

    return Start(name, spawn, ready)


def _libvirt_daemon(host: layout.ComputeHost, daemon: str) -> Start:
    name = '%s-%s' % (daemon, host.name)

    def ready(cloud: Cloud) -> None:
        if daemon == 'libvirtd':
            processes.wait_for(
                'libvirtd of %s' % host.name,
                functools.partial(services.libvirt_answers, host),
                [name], 60)
        else:
            processes.wait_for(
                'virtlogd of %s' % host.name, lambda: (
                    host.tree / 'run' / 'virtlogd-sock').exists(), [name], 60)

    return Start(name, functools.partial(
        services.start_libvirt_daemon, host, daemon), ready, group=False)


def starts(hosts: typing.Sequence[layout.ComputeHost]) -> dict[str, Start]:
    """Every service of the cloud, in the order `up` starts them."""
    listed = [
        Start('postgresql', services.start_postgresql,
              _port('postgresql', layout.PORTS['postgres']),
              stop_signal=signal.SIGINT),
        Start('rabbitmq', services.start_rabbitmq,
              _port('rabbitmq', layout.PORTS['rabbitmq'])),
    ]
    for host in hosts:
        listed += [_libvirt_daemon(host, 'virtlogd'),
                   _libvirt_daemon(host, 'libvirtd')]
    listed += [_uwsgi(name) for name in UWSGI_APPS]
    listed += [_nova_service('nova-conductor'),
               _nova_service('nova-scheduler')]
    listed += [_nova_compute(host) for host in hosts]
    return {start.name: start for start in listed}


def admin_password() -> str:
    """The admin password of the cloud that runs (from its openrc)."""
    return configs.read_openrc()['OS_PASSWORD']
