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

"""The ``[emulator_threads]`` option group."""

from oslo_config import cfg

from nova_emulator_threads.objects import fields

emulator_threads_group = cfg.OptGroup(
    'emulator_threads',
    title='Emulator threads options',
    help="""
Options of the nova-emulator-threads extension, which implements the
``hw:cpu_emulator_threads`` flavor extra spec (alias
``hw:emulator_threads_policy``) in nova-api, nova-scheduler and the libvirt
compute driver ``emulator_threads.LibvirtDriver``. Set them in the same
``nova.conf`` as Nova's own options, on every service that loads the
extension.
""")

emulator_threads_opts: list[cfg.Opt] = [
    cfg.BoolOpt(
        'allow_untested_nova',
        default=False,
        help="""
Apply the extension's patches to Nova even if the installed Nova release is
not one the extension was tested with.

Nova offers no plugin point for three things this extension changes: how
the emulator threads policy is read from a flavor
(``nova.virt.hardware.get_emulator_thread_policy_constraint``), how many
``PCPU`` the scheduler asks placement for
(``nova.scheduler.utils.ResourceRequest._translate_pinning_policies``) and
which pCPU the emulator threads of ``isolate`` get
(``nova.virt.hardware._pack_instance_onto_cores``, see
``emulator_pcpu_siblings``). The extension replaces those three functions,
which is only safe on a Nova whose code it was tested against (Nova 34, the
2026.2 release).

Possible values:

* False (default): on any other Nova release the patches are not applied,
  an error is logged naming the installed and the tested versions, and
  nova-api does not register ``hw:cpu_emulator_threads``, so flavors cannot
  ask for a policy that would be ignored.
* True: apply the patches anyway and log a warning. Only for testing a new
  Nova release before the extension supports it.
"""),
    cfg.BoolOpt(
        'explain_rejections',
        default=True,
        help="""
Whether ``EmulatorThreadsFilter`` logs, at debug level, why each host it
rejects cannot take the request (for example, which host NUMA cell lacks
free dedicated CPUs for the vCPUs plus the emulator threads' reserved CPU).

Working out the reason costs a second pass of the fitting engine for every
rejected host, and is only done when debug logging is enabled for
nova-scheduler. Set this to False on large deployments that run the
scheduler with ``debug = True`` for other reasons; rejected hosts are then
still logged, without the reason.

Related options:

* ``[DEFAULT] debug``
* ``[filter_scheduler] enabled_filters``
"""),
]

# Where an isolated guest's emulator pCPU goes on an SMT host.
emulator_pcpu_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        'emulator_pcpu_siblings',
        default=fields.EmulatorPCPUSiblings.ALLOW,
        choices=[
            (fields.EmulatorPCPUSiblings.ALLOW,
             "The emulator pCPU of an 'isolate' guest is the first free "
             "pCPU once its vCPUs are pinned, which may be an SMT sibling "
             "(the other hyperthread of the core) of one of them (Nova's "
             "behaviour)."),
            (fields.EmulatorPCPUSiblings.AVOID,
             "It is never a sibling of a pCPU that runs one of the guest's "
             "vCPUs; a host NUMA cell without such a free pCPU does not fit "
             "the guest's first NUMA cell."),
        ],
        help="""
Whether the pCPU reserved for the emulator threads of a guest with emulator
threads policy ``isolate`` may be an SMT sibling of a pCPU that runs one of
the same guest's vCPUs.

Two hyperthreads of one core share its execution units and caches, so
emulator threads on the sibling of a vCPU's pCPU still slow that vCPU down,
which is what realtime and packet-processing guests ask for ``isolate`` to
prevent. Nova takes the first free pCPU after pinning the vCPUs, on the host
NUMA cell of the guest's first NUMA cell; on SMT hosts that is often the
sibling of the last vCPU's pCPU. With ``avoid`` the emulator pCPU is the
first free pCPU, in the same order, on a core that runs none of the guest's
vCPUs; when the host cell has none left, that cell does not fit and the next
one is tried, as for any guest that does not fit a cell. The vCPUs' pins and
the placement request (``PCPU`` = vCPUs + 1) do not change.

Set the same value on nova-scheduler (its ``NUMATopologyFilter`` and
``EmulatorThreadsFilter`` decide with it) and on every nova-compute (its
NUMA claim chooses the pCPU with it): if they differ, the compute host's
claim chooses another pCPU than the scheduler assumed, or refuses a host
the scheduler chose. Also wherever ``nova-emulator-threads plan`` runs.
Guests already running keep their pCPUs; ``nova-emulator-threads audit``
reports those whose emulator pCPU is a vCPU's sibling. Has no effect on
hosts without SMT, on guests with ``hw:cpu_thread_policy=isolate`` (their
vCPUs' cores are already kept whole) and on ``share`` guests (no emulator
pCPU is reserved).

Related options:

* ``[compute] cpu_dedicated_set``
* ``[filter_scheduler] enabled_filters`` (``NUMATopologyFilter``)
"""),
]

# The shared emulator pool: where 'share' guests' emulator threads run, what
# placement counts for them, and how much CPU time they may take.
shared_pool_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        'shared_pool_affinity',
        default=fields.SharedPoolAffinity.ANY,
        choices=[
            (fields.SharedPoolAffinity.ANY,
             "A 'share' guest's emulator threads and I/O thread run on the "
             "whole [compute] cpu_shared_set, on every NUMA node (Nova's "
             "behaviour)."),
            (fields.SharedPoolAffinity.NUMA,
             "They run on the cpu_shared_set CPUs of the host NUMA cells the "
             "guest's cells landed on; on the whole set when none of those "
             "cells has shared CPUs."),
        ],
        help="""
Where the emulator threads (and the I/O thread) of a guest with emulator
threads policy ``share`` run, on a host with ``[compute] cpu_shared_set``.

With ``numa`` the threads stay on the NUMA node(s) of the guest's memory and
vCPUs, so the QEMU main loop, its I/O thread and the vhost threads that
follow them do not cross the interconnect. Nova pins them to the whole
shared set. When none of the guest's host cells has shared CPUs, the whole
set is used and the compute log says so once for the guest.

Set it on the compute hosts (the libvirt driver) and wherever
``nova-emulator-threads plan`` or ``audit`` run, so that they agree.

Related options:

* ``[compute] cpu_shared_set``
"""),
    cfg.IntOpt(
        'shared_pool_vcpus',
        default=0,
        min=0,
        help="""
How many ``VCPU`` of the shared pool every guest with emulator threads
policy ``share`` claims in placement for its emulator threads, besides its
``PCPU`` (and, for ``mixed`` guests, the ``VCPU`` of their shared vCPUs).

The shared pool is the host's ``VCPU`` inventory, which Nova builds from
``[compute] cpu_shared_set`` and ``cpu_allocation_ratio``. With a value above
0, emulator threads and floating guests compete for that one counted
resource: a ``share`` guest that does not fit any more fails with
NoValidHost, a delete gives the room back, and moves carry the claim. Hosts
without a shared pool (no ``VCPU`` inventory) are never chosen for such a
guest. 0 (the default) claims nothing, as Nova does.

Set it on nova-scheduler (it changes the placement request) and wherever
``nova-emulator-threads plan`` runs.

Related options:

* ``[compute] cpu_shared_set``, ``cpu_allocation_ratio``
* ``shared_pool_quota``
"""),
    cfg.BoolOpt(
        'shared_pool_quota',
        default=False,
        help="""
Cap the emulator threads of every ``share`` guest at the CPU time
``shared_pool_vcpus`` accounted for them: ``shared_pool_vcpus /
cpu_allocation_ratio`` of one pCPU, written as ``<emulator_period>`` and
``<emulator_quota>`` in the guest's ``<cputune>`` (CFS bandwidth control of
the emulator cgroup). One busy guest then cannot take the pool from the
others. Has no effect while ``shared_pool_vcpus`` is 0. False (the default)
writes no cap, as Nova does.

Set it on the compute hosts.

Related options:

* ``shared_pool_vcpus``
* ``[compute] cpu_allocation_ratio``
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(emulator_threads_group)
    conf.register_opts(emulator_threads_opts, group=emulator_threads_group)
    conf.register_opts(emulator_pcpu_opts, group=emulator_threads_group)
    conf.register_opts(shared_pool_opts, group=emulator_threads_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {emulator_threads_group: (emulator_threads_opts
                                     + emulator_pcpu_opts
                                     + shared_pool_opts)}
