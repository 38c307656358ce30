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

"""The functional test base: a whole Nova in one process, our code in it.

Real nova-api (with its extra-spec validators loaded through the entry
point), conductor, scheduler (with ``EmulatorThreadsFilter`` loaded from
``available_filters``) and placement, and nova-compute running
``compute_driver = emulator_threads.LibvirtDriver`` (through the
``nova/virt/emulator_threads.py`` shim) over Nova's fake libvirt. Tests
drive only the REST API, as tempest would, and assert on what a user and
an operator see: server status and fault, placement allocations and
usages, the host's NUMA pinning and the guest's domain XML.

Run with stestr and Nova's functional environment (tox -e functional).
"""

import time
from collections.abc import Callable
from typing import Any

import fixtures
from lxml import etree
from nova import context as nova_context
from nova import objects
from nova.scheduler import host_manager
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional import integrated_helpers
from nova.tests.functional.api import client
from nova.tests.functional.libvirt import base as libvirt_base

from nova_emulator_threads import cpuset

FILTER_PATH = 'nova_emulator_threads.scheduler.filters.EmulatorThreadsFilter'
COMPUTE_DRIVER = 'emulator_threads.LibvirtDriver'

#: Flavor extra specs (as ``flavor()`` takes them) of the two policies.
ISOLATE = {'hw__cpu_policy': 'dedicated',
           'hw__cpu_emulator_threads': 'isolate'}
SHARE = {'hw__cpu_policy': 'dedicated', 'hw__cpu_emulator_threads': 'share'}


def host_info(cells: int = 2, cores: int = 4,
              threads: int = 1) -> fakelibvirt.HostInfo:
    """A fake host: ``cells`` NUMA cells of ``cores * threads`` CPUs.

    CPUs are numbered cell by cell: cell 0 has CPUs 0 to
    ``cores * threads - 1``.
    """
    return fakelibvirt.HostInfo(
        cpu_nodes=cells, cpu_sockets=1, cpu_cores=cores,
        cpu_threads=threads, kB_mem=16 * 1024 * 1024)


class EmulatorThreadsTestBase(libvirt_base.ServersTestBase,
                              integrated_helpers.InstanceHelperMixin):
    """Nova's libvirt functional base, with our driver and filter."""

    ADMIN_API = True
    microversion = 'latest'
    #: Our filter first, then Nova's: the order the README recommends.
    ADDITIONAL_FILTERS = ['EmulatorThreadsFilter', 'NUMATopologyFilter']

    def setUp(self) -> None:
        super().setUp()
        self.ctxt = nova_context.get_admin_context()
        # Nothing listens for neutron's vif-plugged events here.
        self.flags(vif_plugging_timeout=0)

    def _setup_compute_service(self) -> None:
        # Nova's base selects 'libvirt.LibvirtDriver' here and starts the
        # computes later, in start_compute(); select ours, by the name an
        # operator writes in nova.conf.
        self.flags(compute_driver=COMPUTE_DRIVER)

    def _setup_scheduler_service(self) -> Any:
        self.flags(available_filters=[
            'nova.scheduler.filters.all_filters', FILTER_PATH],
            group='filter_scheduler')
        return super()._setup_scheduler_service()

    # -- set-up helpers ---------------------------------------------------

    def start_host(self, hostname: str, dedicated: str,
                   shared: str | None = None, cells: int = 2,
                   cores: int = 4, threads: int = 1) -> str:
        """Start a compute of the given shape with ``[compute]
        cpu_dedicated_set`` (and ``cpu_shared_set``) as given.

        Every service of the test reads the one global CONF, and computes
        re-read these options whenever they report their resources: hosts
        of one test must therefore share them (vary their shapes instead).
        """
        config = (dedicated, shared)
        first = getattr(self, '_cpu_config', None)
        if first is not None and first != config:
            raise ValueError(
                'hosts of one test share [compute] cpu_dedicated_set and '
                'cpu_shared_set (%s); %s asked for %s'
                % (first, hostname, config))
        self._cpu_config = config
        self.flags(cpu_dedicated_set=dedicated, cpu_shared_set=shared,
                   group='compute')
        return self.start_compute(
            hostname=hostname,
            host_info=host_info(cells=cells, cores=cores, threads=threads))

    def start_two_hosts_for_moves(self) -> None:
        """Two like hosts, ``host1`` and ``host2``, to migrate between.

        Nova's own libvirt functional tests do the same with the disk
        copy: the real ``migrate_disk_and_power_off`` copies disks over
        SSH. Everything else of a move is real.
        """
        for hostname in ('host1', 'host2'):
            self.start_host(hostname, dedicated='1-3,5-7', shared='0,4')
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver.'
            'migrate_disk_and_power_off', return_value='{}'))

    def flavor(self, vcpus: int = 2, memory_mb: int = 1024,
               **extra_specs: str) -> str:
        """Create a flavor through the API; keys use '__' for ':'."""
        specs = {key.replace('__', ':'): value
                 for key, value in extra_specs.items()}
        return self._create_flavor(vcpu=vcpus, memory_mb=memory_mb,
                                   disk=1, ephemeral=0,
                                   extra_spec=specs or None)

    def boot(self, flavor_id: str, expected_state: str = 'ACTIVE',
             host: str | None = None) -> dict[str, Any]:
        return self._create_server(flavor_id=flavor_id, networks='none',
                                   host=host, expected_state=expected_state)

    def api_error(self, call: Callable[..., Any], *args: Any,
                  **kwargs: Any) -> tuple[int, str]:
        """Make an API call that must fail; return status and message."""
        try:
            call(*args, **kwargs)
        except client.OpenStackApiException as exc:
            body = exc.response.json()
            (error,) = body.values()
            return exc.response.status_code, error['message']
        raise self.failureException('the API call succeeded')

    def set_extra_specs(self, flavor_id: str, **specs: str) -> None:
        self.admin_api.post_extra_spec(flavor_id, {'extra_specs': specs})

    def create_server_error(self, flavor_id: str) -> tuple[int, str]:
        """POST /servers that must be refused; status and message."""
        body = self._build_server(flavor_id=flavor_id, networks='none')
        return self.api_error(self.api.post_server, {'server': body})

    # -- what an operator sees ---------------------------------------------

    def host_of(self, server: dict[str, Any]) -> str:
        return self.api.get_server(server['id'])['OS-EXT-SRV-ATTR:host']

    def usages(self, hostname: str) -> dict[str, int]:
        return self._get_provider_usages(self.compute_rp_uuids[hostname])

    def allocation(self, consumer: str, hostname: str) -> dict[str, int]:
        """The resources ``consumer`` holds on ``hostname``'s provider."""
        allocations = self._get_allocations_by_server_uuid(consumer)
        rp_uuid = self.compute_rp_uuids[hostname]
        if rp_uuid not in allocations:
            return {}
        return allocations[rp_uuid]['resources']

    def host_numa(self, hostname: str) -> Any:
        """The host's NUMA topology as the compute reported it."""
        node = objects.ComputeNode.get_by_nodename(self.ctxt, hostname)
        return objects.NUMATopology.obj_from_db_obj(node.numa_topology)

    def pinned(self, hostname: str) -> set[int]:
        """Every pCPU the host has handed out (vCPUs and emulators)."""
        pins: set[int] = set()
        for cell in self.host_numa(hostname).cells:
            pins |= cell.pinned_cpus
        return pins

    def instance_numa(self, server: dict[str, Any]) -> Any:
        inst = objects.Instance.get_by_uuid(
            self.ctxt, server['id'], expected_attrs=['numa_topology'])
        return inst.numa_topology

    def domain_xml(self, server: dict[str, Any],
                   hostname: str | None = None) -> Any:
        """The guest's domain XML, as libvirt returns it."""
        hostname = hostname or self.host_of(server)
        conn = self.computes[hostname].driver._host.get_connection()
        xml = conn.lookupByUUIDString(server['id']).XMLDesc(0)
        return etree.fromstring(xml.encode('utf-8'))

    def cputune(self, server: dict[str, Any],
                hostname: str | None = None) -> dict[str, Any]:
        """``<emulatorpin>``, ``<iothreadpin>`` and ``<vcpupin>`` sets."""
        root = self.domain_xml(server, hostname)
        emulator = root.find('./cputune/emulatorpin')
        return {
            'emulatorpin': (None if emulator is None else
                            cpuset.parse_cpu_spec(emulator.get('cpuset'))),
            'iothreadpin': {
                int(pin.get('iothread')): cpuset.parse_cpu_spec(
                    pin.get('cpuset'))
                for pin in root.findall('./cputune/iothreadpin')},
            'vcpupin': {
                int(pin.get('vcpu')): cpuset.parse_cpu_spec(
                    pin.get('cpuset'))
                for pin in root.findall('./cputune/vcpupin')},
        }


    def vcpu_pcpus(self, tune: dict[str, Any]) -> set[int]:
        return set().union(*tune['vcpupin'].values())

    def assert_isolated(self, server: dict[str, Any], hostname: str,
                        vcpus: int) -> None:
        """What isolate promises, checked on every side."""
        numa = self.instance_numa(server)
        self.assertEqual('isolate', numa.emulator_threads_policy)
        reserved = numa.cells[0].cpuset_reserved
        tune = self.cputune(server, hostname)
        vcpu_pcpus = self.vcpu_pcpus(tune)

        # One pCPU, not any vCPU's, on the host cell of guest node 0, and
        # the one the compute's NUMA claim reserved.
        self.assertEqual(1, len(tune['emulatorpin']))
        self.assertEqual(reserved, tune['emulatorpin'])
        self.assertTrue(tune['emulatorpin'].isdisjoint(vcpu_pcpus))
        host_cell = self.host_numa(hostname).cells[numa.cells[0].id]
        self.assertLessEqual(tune['emulatorpin'], host_cell.pcpuset)
        for cell in numa.cells[1:]:
            self.assertFalse(cell.cpuset_reserved)
        # The I/O thread runs with the emulator threads.
        self.assertEqual({1: tune['emulatorpin']}, tune['iothreadpin'])
        # Every vCPU has a pCPU of its own.
        self.assertEqual(vcpus, len(vcpu_pcpus))
        self.assertEqual(vcpus, len(tune['vcpupin']))

        # Placement: PCPU = vCPUs + 1 ...
        self.assertEqual(vcpus + 1,
                         self.allocation(server['id'], hostname)['PCPU'])
        # ... and the host holds exactly those pCPUs for the guest.
        self.assertEqual(vcpu_pcpus | reserved, self.pinned(hostname))

    def assert_shared(self, server: dict[str, Any], hostname: str,
                      vcpus: int, emulatorpin: set[int] | None) -> None:
        """share: no extra pCPU; emulators on ``emulatorpin``.

        ``emulatorpin=None``: floating over the vCPUs' pCPUs.
        """
        numa = self.instance_numa(server)
        self.assertEqual('share', numa.emulator_threads_policy)
        self.assertFalse(any(cell.cpuset_reserved for cell in numa.cells))
        tune = self.cputune(server, hostname)
        vcpu_pcpus = self.vcpu_pcpus(tune)
        self.assertEqual(vcpus, len(vcpu_pcpus))
        expected = vcpu_pcpus if emulatorpin is None else emulatorpin
        self.assertEqual(expected, tune['emulatorpin'])
        self.assertEqual({1: expected}, tune['iothreadpin'])
        self.assertEqual(vcpus,
                         self.allocation(server['id'], hostname)['PCPU'])
        self.assertEqual(vcpu_pcpus, self.pinned(hostname))

    def boot_settled(self, flavor_id: str) -> dict[str, Any]:
        """Boot; wait for ACTIVE or ERROR, whichever it becomes."""
        body = self._build_server(flavor_id=flavor_id, networks='none')
        server = self.api.post_server({'server': body})
        for _attempt in range(20):
            server = self.api.get_server(server['id'])
            if server['status'] == 'ACTIVE' or (
                    server['status'] == 'ERROR' and 'fault' in server):
                return server
            time.sleep(0.5)
        self.fail('server %s did not settle: %s' % (server['id'], server))

    def spy_filtered_hosts(
            self, spy: Callable[[Any, list[dict[str, Any]]], Any]
    ) -> list[dict[str, Any]]:
        """Put ``spy(original, requests)`` in the place of the scheduler's
        ``HostManager.get_filtered_hosts``.

        :returns: the list the spy records each request in
        """
        requests: list[dict[str, Any]] = []
        self.useFixture(fixtures.MonkeyPatch(
            'nova.scheduler.host_manager.HostManager.get_filtered_hosts',
            spy(host_manager.HostManager.get_filtered_hosts, requests)))
        return requests

    def boot_filter_flavors(self, rounds: int = 3) -> list[str]:
        """Boot each of ``filter_flavors()``, ``rounds`` times over, one
        at a time until it settles.

        :returns: the status of each server
        """
        flavors = self.filter_flavors()
        return [self.boot_settled(flavor)['status']
                for _round in range(rounds) for flavor in flavors]

    def filter_flavors(self) -> list[str]:
        """Flavors that exercise every branch of the NUMA filters."""
        ded = {'hw__cpu_policy': 'dedicated'}
        return [
            self.flavor(vcpus=2, hw__cpu_emulator_threads='isolate', **ded),
            self.flavor(vcpus=3, hw__cpu_emulator_threads='isolate', **ded),
            self.flavor(vcpus=2, hw__numa_nodes='2',
                        hw__cpu_emulator_threads='isolate', **ded),
            self.flavor(vcpus=2, hw__cpu_emulator_threads='share', **ded),
            self.flavor(vcpus=1, hw__cpu_thread_policy='isolate',
                        hw__cpu_emulator_threads='isolate', **ded),
            self.flavor(vcpus=2, hw__cpu_thread_policy='require',
                        hw__emulator_threads_policy='isolate', **ded),
            self.flavor(vcpus=3, hw__cpu_policy='mixed',
                        hw__cpu_dedicated_mask='^0',
                        hw__cpu_emulator_threads='isolate'),
            self.flavor(vcpus=2, hw__numa_nodes='2'),
        ]

    def start_filter_hosts(self) -> None:
        """Four hosts of eight CPUs in different shapes, one configuration:
        CPUs 0 and 4 shared, the other six dedicated.
        """
        # Enough servers to fill every host, whatever the default quota.
        self.flags(cores=-1, ram=-1, instances=-1, group='quota')
        config = {'dedicated': '1-3,5-7', 'shared': '0,4'}
        # Two cells of four CPUs: three dedicated pCPUs per cell.
        self.start_host('wide', cells=2, cores=4, **config)
        # Four cells of two CPUs: one or two dedicated pCPUs per cell, so
        # placement has room for a 2-vCPU isolate guest (3 PCPU) and no
        # cell has.
        self.start_host('split', cells=4, cores=2, **config)
        # One cell: all six dedicated pCPUs together.
        self.start_host('single', cells=1, cores=8, **config)
        # SMT: two cells of two cores of two threads.
        self.start_host('smt', cells=2, cores=2, threads=2, **config)
