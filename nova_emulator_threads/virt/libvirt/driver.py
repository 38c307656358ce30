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

"""The libvirt compute driver of nova-emulator-threads.

``compute_driver = emulator_threads.LibvirtDriver`` (through the shim
``nova/virt/emulator_threads.py``) loads this subclass of Nova's libvirt
driver. It differs from Nova's in one place: the ``<emulatorpin>`` and
``<iothreadpin>`` of the guest are chosen by our ``cputune`` module from
the instance's fitted NUMA topology and its ``cpuset_reserved``, after
Nova has built the rest of ``<cputune>``; with ``[emulator_threads]
shared_pool_affinity = numa`` they follow the guest's NUMA cells, and with
``shared_pool_quota`` the emulator threads get a CFS cap
(``<emulator_period>``/``<emulator_quota>``).

What an instance costs beyond its vCPUs (``overhead.py``) is not asked of
the driver: Nova 34 dropped the driver's ``estimate_instance_overhead``
and its resource tracker no longer calls it. The compute host's NUMA
claim reserves the emulator pCPU through Nova's fitter
(``InstanceNUMATopology.emulator_threads_policy``, which seam (a) of
``nova_patch`` fills from ``hw:cpu_emulator_threads``), and the
scheduler's placement claim takes the same figure through seam (b).

Importing this module applies the seams of ``nova_patch`` in
nova-compute: resize and migration claims and the realtime check read the
emulator threads policy through them.
"""

import threading
from typing import Any

from nova import exception as nova_exception
from nova.virt import hardware as nova_hardware
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_emulator_threads import conf
from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads import nova_patch
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import nova_objects
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import bandwidth
from nova_emulator_threads.virt.libvirt import cputune

LOG = logging.getLogger(__name__)
CONF = conf.CONF


class GuestCPUTune(vconfig.LibvirtConfigGuestCPUTune):
    """Nova's ``<cputune>``, plus the emulator threads' CFS bandwidth.

    Nova's class has no ``<emulator_period>``/``<emulator_quota>``; libvirt
    reads ``<cputune>``'s children in any order, so they are appended.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.emulator_period: int | None = None
        self.emulator_quota: int | None = None

    @classmethod
    def from_nova(cls, tune: vconfig.LibvirtConfigGuestCPUTune,
                  cap: bandwidth.EmulatorBandwidth) -> 'GuestCPUTune':
        ours = cls()
        for name in ('shares', 'quota', 'period', 'vcpupin', 'emulatorpin',
                     'iothreadpin', 'vcpusched'):
            setattr(ours, name, getattr(tune, name))
        ours.emulator_period = cap.period
        ours.emulator_quota = cap.quota
        return ours

    def format_dom(self) -> Any:
        root = super().format_dom()
        if self.emulator_period is not None:
            root.append(self._text_node('emulator_period',
                                        str(self.emulator_period)))
        if self.emulator_quota is not None:
            root.append(self._text_node('emulator_quota',
                                        str(self.emulator_quota)))
        return root


def cpu_allocation_ratio() -> float:
    """The ratio Nova gives a new compute node's ``VCPU`` inventory."""
    return float(CONF.cpu_allocation_ratio or
                 CONF.initial_cpu_allocation_ratio)


class LibvirtDriver(libvirt_driver.LibvirtDriver):
    """Nova's libvirt driver, placing emulator threads our way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Guests already told that their emulator threads could not stay
        # on their NUMA cells (shared_pool_affinity = numa): once each.
        self._shared_pool_fallbacks: set[str] = set()
        # The instance whose guest config is being built, per (green)
        # thread: the fitted NUMA topology of a new claim does not carry
        # its instance's UUID.
        self._building = threading.local()

    def _get_guest_config(self, instance: Any, *args: Any,
                          **kwargs: Any) -> Any:
        self._building.uuid = instance.uuid
        try:
            return super()._get_guest_config(instance, *args, **kwargs)
        finally:
            self._building.uuid = None

    def _log_shared_pool_fallback(
            self, instance_numa_topology: Any,
            fitted: topology.InstanceTopology,
            shared: frozenset[int],
            host: topology.HostTopology | None) -> None:
        if (CONF.emulator_threads.shared_pool_affinity !=
                fields.SharedPoolAffinity.NUMA or
                fitted.emulator_threads_policy !=
                fields.CPUEmulatorThreadsPolicy.SHARE or not shared or
                cputune.numa_local_shared_cpuset(fitted, shared, host)):
            return
        uuid: str | None = getattr(self._building, 'uuid', None)
        if (uuid is None and
                instance_numa_topology.obj_attr_is_set('instance_uuid')):
            uuid = instance_numa_topology.instance_uuid
        if uuid is not None:
            if uuid in self._shared_pool_fallbacks:
                return
            self._shared_pool_fallbacks.add(uuid)
        LOG.warning('None of the host NUMA cells %(cells)s of the guest has '
                    'CPUs of [compute] cpu_shared_set (%(shared)s): its '
                    'emulator threads run on the whole set, not on its '
                    'NUMA cells ([emulator_threads] shared_pool_affinity = '
                    'numa).',
                    {'cells': cpuset.format_cpu_spec(
                        frozenset(cell.id for cell in fitted.cells)),
                     'shared': cpuset.format_cpu_spec(shared)},
                    instance_uuid=uuid)

    def _host_topology(self) -> topology.HostTopology | None:
        host = self._get_host_numa_topology()
        if host is None:
            return None
        return nova_objects.host_from_object(host)

    def _get_guest_numa_config(self, instance_numa_topology: Any,
                               flavor: Any, image_meta: Any) -> Any:
        """Nova's NUMA config, with our ``<emulatorpin>``/``<iothreadpin>``.

        Nova builds ``<vcpupin>``, ``<vcpusched>`` and ``<numatune>``; we
        replace the emulator and I/O thread pins with ``cputune``'s choice
        for the instance's fitted topology. Also used for the destination
        XML of a live migration.
        """
        config = super()._get_guest_numa_config(
            instance_numa_topology, flavor, image_meta)
        tune = config.cputune
        if tune is None or instance_numa_topology is None:
            # No guest NUMA topology, or no host one: nothing is pinned.
            return config
        realtime = nova_hardware.get_realtime_cpu_constraint(
            flavor, image_meta) or set()
        shared = nova_hardware.get_cpu_shared_set() or set()
        options = CONF.emulator_threads
        try:
            fitted = nova_objects.instance_from_object(
                instance_numa_topology, frozenset(realtime))
            # Nova pins to the online CPUs of the set; its resource
            # tracking already refuses a set with offline CPUs.
            online_shared = frozenset(shared & self._host.get_online_cpus())
            host = self._host_topology()
            emulator = cputune.emulatorpin_cpuset(
                fitted, online_shared, host=host,
                shared_pool_affinity=options.shared_pool_affinity)
            self._log_shared_pool_fallback(
                instance_numa_topology, fitted, online_shared, host)
            cap = None
            if options.shared_pool_quota:
                cap = bandwidth.emulator_bandwidth(
                    fitted.emulator_threads_policy,
                    options.shared_pool_vcpus, cpu_allocation_ratio())
        except exception.EmulatorThreadsException as exc:
            raise nova_exception.Invalid(str(exc)) from exc
        if cap is not None:
            tune = GuestCPUTune.from_nova(tune, cap)
            config = config._replace(cputune=tune)
        tune.emulatorpin = vconfig.LibvirtConfigGuestCPUTuneEmulatorPin()
        tune.emulatorpin.cpuset = set(emulator)
        tune.iothreadpin = []
        for iothread, pcpus in sorted(
                cputune.iothreadpin_cpusets(emulator).items()):
            pin = vconfig.LibvirtConfigGuestCPUTuneIOThreadPin()
            pin.iothread = iothread
            pin.cpuset = set(pcpus)
            tune.iothreadpin.append(pin)
        LOG.debug('Emulator threads (policy %(policy)s) pinned to %(cpus)s',
                  {'policy': fitted.emulator_threads_policy,
                   'cpus': cpuset.format_cpu_spec(emulator)})
        return config


# See the module docstring: this is how the seams reach nova-compute.
nova_patch.apply()
