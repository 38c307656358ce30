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

"""Every configuration file, rendered from ``tools/all-in-one/templates``."""

import pathlib
import re
import secrets
import shutil
import typing

from allinone import layout

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r'{{(\w+)}}')


def render(template: str, target: pathlib.Path,
           values: dict[str, typing.Any]) -> None:
    text = (layout.TEMPLATES / template).read_text()

    def value(match: re.Match[str]) -> str:
        try:
            return str(values[match.group(1)])
        except KeyError:
            raise layout.Failed(
                'template %s uses {{%s}}, which aio.py does not define' % (
                    template, match.group(1))) from None

    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_PLACEHOLDER.sub(value, text))
    target.chmod(0o600)


def settings() -> dict[str, typing.Any]:
    """Every template value; passwords are new with every `up`."""
    values: dict[str, typing.Any] = {
        'venv': layout.VENV, 'etc': layout.ETC, 'logs': layout.LOGS,
        'data': layout.DATA,
        'db_password': secrets.token_hex(12),
        'service_password': secrets.token_hex(12),
        'admin_password': secrets.token_hex(12),
        'keystone_url': layout.URLS['keystone'],
        'glance_url': layout.URLS['glance'],
    }
    values.update({'%s_port' % name: port
                   for name, port in layout.PORTS.items()})
    return values


# Template -> the directory of its service's configuration.
SERVICE_CONFIGS = (
    ('keystone.conf', 'keystone'), ('placement.conf', 'placement'),
    ('glance-api.conf', 'glance'), ('nova.conf', 'nova'),
    ('nova-controller.conf', 'nova'), ('neutron.conf', 'neutron'),
    ('ml2_conf.ini', 'neutron'),
)
# The paste pipelines the packages ship, copied next to the configuration.
PASTE_FILES = (('glance', 'glance-api-paste.ini'),
               ('nova', 'api-paste.ini'), ('neutron', 'api-paste.ini'))


def write_configs(values: dict[str, typing.Any],
                  hosts: typing.Sequence[layout.ComputeHost],
                  virt_type: str) -> None:
    for template, service in SERVICE_CONFIGS:
        render(template, layout.ETC / service / template, values)
    for service, name in PASTE_FILES:
        shutil.copy(layout.VENV / 'etc' / service / name,
                    layout.ETC / service)
    for host in hosts:
        cpu_sets = 'cpu_dedicated_set = %s' % host.cpu_dedicated_set
        if host.cpu_shared_set is not None:
            cpu_sets += '\ncpu_shared_set = %s' % host.cpu_shared_set
        render('nova-compute.conf', layout.ETC / 'nova' / (
            'nova-compute-%s.conf' % host.name), dict(
                values, host=host.name, cpu_sets=cpu_sets,
                virt_type=virt_type, libvirt_uri=host.libvirt_uri))
    rabbit = layout.ETC / 'rabbitmq'
    render('rabbitmq.conf', rabbit / 'rabbitmq.conf', values)
    (rabbit / 'enabled_plugins').write_text('[].\n')
    openrc = layout.ETC / 'openrc'
    openrc.write_text(
        '# source this file to use the all-in-one cloud as its admin\n'
        'export OS_AUTH_URL=%s/v3\nexport OS_USERNAME=admin\n'
        'export OS_PASSWORD=%s\nexport OS_PROJECT_NAME=admin\n'
        'export OS_USER_DOMAIN_ID=default\n'
        'export OS_PROJECT_DOMAIN_ID=default\n'
        'export OS_REGION_NAME=RegionOne\n'
        'export OS_IDENTITY_API_VERSION=3\n'
        'export PATH=%s/bin:$PATH\n' % (
            layout.URLS['keystone'], values['admin_password'], layout.VENV))
    openrc.chmod(0o600)


def read_openrc() -> dict[str, str]:
    """The variables of the running cloud's openrc (its admin password
    lives only there and in the services' configuration).
    """
    path = layout.ETC / 'openrc'
    try:
        text = path.read_text()
    except OSError as exc:
        raise layout.Failed('the cloud is not up: no %s (%s)' % (
            path, exc.strerror)) from None
    return dict(line.removeprefix('export ').split('=', 1)
                for line in text.splitlines()
                if line.startswith('export '))
