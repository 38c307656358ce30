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

from oslo_config import cfg

emulator_threads_group = cfg.OptGroup(
    name='emulator_threads',
    title='nova-emulator-threads tests',
    help='Where the compute hosts of the cloud under test can be inspected '
         'from the machine running tempest.')

EmulatorThreadsGroup = [
    cfg.DictOpt(
        'libvirt_uris',
        default={},
        help='Compute host name -> the libvirt URI of its libvirtd, as '
             'host:uri pairs separated by commas, for example '
             '"compute1:qemu:///system". The audit reads the host\'s /proc, '
             'so only hosts of the machine running tempest can be listed. '
             'The host-side checks (domain XML, real thread affinity, '
             'audit) run for servers on listed hosts and are skipped for '
             'the others.'),
    cfg.StrOpt(
        'share_host',
        help='A compute host with [compute] cpu_shared_set configured. The '
             'share tests boot there (the "host" of microversion 2.74) and '
             'are skipped when this is unset.'),
    cfg.StrOpt(
        'share_host_cpu_shared_set',
        help='The [compute] cpu_shared_set of share_host, in Nova\'s range '
             'syntax ("0-1,^1"): where share puts the emulator threads.'),
    cfg.StrOpt(
        'audit_command',
        default='nova-emulator-threads',
        help='The nova-emulator-threads command that audits a compute host '
             '(a name on PATH or a full path).'),
    cfg.IntOpt(
        'fill_limit',
        default=4,
        min=1,
        help='The fill test boots as many isolate servers as placement has '
             'room for, plus one; it is skipped when that is more than '
             'this.'),
    cfg.StrOpt(
        'fault_command',
        help='A command that injects faults into the cloud under test, '
             'run on the machine running tempest as "COMMAND kill SERVICE" '
             '(SIGKILL, as a crash would) and "COMMAND restart SERVICE" '
             '(returns once the service serves again). SERVICE is '
             '"nova-compute-HOST", "libvirtd-HOST" (HOST a compute host '
             'of libvirt_uris) or "rabbitmq". Split like a shell command '
             'line. The fault tests are skipped when this is unset; the '
             'all-in-one cloud sets it to its "aio.py".'),
    cfg.StrOpt(
        'nova_manage_command',
        help='nova-manage with the configuration that reaches the cloud\'s '
             'API and cell databases, split like a shell command line. '
             'The fault tests run "placement audit" with it after a '
             'nova-compute was killed, as an operator would, and are '
             'skipped when this is unset.'),
]
