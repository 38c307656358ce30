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

"""The seams of ``nova_patch`` are in force in every service.

Two kinds of proof:

* Each service loads our code its own way: nova-api through the
  extra-spec validator entry point, nova-scheduler through
  ``[filter_scheduler] available_filters``, nova-compute through
  ``compute_driver``. ``ServiceLoadingTest`` reproduces each in a fresh
  Python process (nothing else of ours imported) and checks that both
  seams are applied and answer with our policy and our overhead.
* In the in-process cloud, each service's own code path reads the
  policy and the overhead through the seams: the API's NUMA constraints,
  the scheduler's placement request, the compute's resize claim and its
  realtime check (``SeamInServiceTest``).
"""

import json
import subprocess
import sys
import textwrap
from typing import Any

import fixtures
import testtools
from nova import exception as nova_exception
from nova import objects

from nova_emulator_threads import overhead
from tests.functional import base

#: Printed by every service script: what is in force after loading.
_CHECK = '''
import json, sys
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.virt import hardware

SERVICE_MODULES = {
    'nova_emulator_threads.api.validation.extra_specs',
    'nova_emulator_threads.scheduler.filters',
    'nova_emulator_threads.virt.libvirt.driver',
}
objects.register_all()
flavor = objects.Flavor(
    vcpus=2, memory_mb=1024, root_gb=1, ephemeral_gb=0, swap=0,
    extra_specs={'hw:cpu_policy': 'dedicated',
                 'hw:cpu_emulator_threads': 'isolate'})
image = objects.ImageMeta(properties=objects.ImageMetaProps())
spec = objects.RequestSpec(flavor=flavor, image=image, is_bfv=False)
constraints = hardware.numa_get_constraints(flavor, image)
print(json.dumps({
    'policy_seam': hardware.get_emulator_thread_policy_constraint.__module__,
    'placement_seam':
        scheduler_utils.ResourceRequest._translate_pinning_policies
        .__module__,
    'policy': constraints.emulator_threads_policy,
    'placement': scheduler_utils.ResourceRequest.from_request_spec(
        spec).merged_resources(),
    'ours_loaded': sorted(SERVICE_MODULES & set(sys.modules)),
}))
'''

_LOADERS = {
    # nova-api: the router imports the flavor extra-specs controller,
    # which loads every validator of the entry-point namespace.
    'api': '''
import nova.api.openstack.compute.flavors_extraspecs
from nova.api.validation.extra_specs import validators
assert 'hw:cpu_emulator_threads' in validators.VALIDATORS
''',
    # nova-scheduler: HostManager loads [filter_scheduler]
    # available_filters this way, enabled or not.
    'scheduler': '''
from nova.scheduler import filters
classes = filters.HostFilterHandler().get_matching_classes([
    'nova.scheduler.filters.all_filters', '%s'])
assert 'EmulatorThreadsFilter' in [c.__name__ for c in classes]
''' % base.FILTER_PATH,
    # nova-compute: load_compute_driver imports nova.virt.<compute_driver>.
    'compute': '''
from oslo_utils import importutils
cls = importutils.import_class('nova.virt.%s')
assert cls.__module__ == 'nova_emulator_threads.virt.libvirt.driver'
''' % base.COMPUTE_DRIVER,
}


class ServiceLoadingTest(testtools.TestCase):
    """Each service's loading path applies both seams by itself."""

    def run_service_loader(self, service: str) -> dict[str, Any]:
        script = textwrap.dedent(_LOADERS[service]) + _CHECK
        result = subprocess.run(
            [sys.executable, '-c', script], capture_output=True,
            text=True, timeout=120, check=False)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def assert_seams(self, found: dict[str, Any], loaded: str) -> None:
        self.assertEqual('nova_emulator_threads.nova_patch',
                         found['policy_seam'])
        self.assertEqual('nova_emulator_threads.nova_patch',
                         found['placement_seam'])
        # Nova alone knows nothing of hw:cpu_emulator_threads.
        self.assertEqual('isolate', found['policy'])
        self.assertEqual({'PCPU': 3, 'MEMORY_MB': 1024, 'DISK_GB': 1},
                         found['placement'])
        # Only this service's module of ours was loaded.
        self.assertEqual([loaded], found['ours_loaded'])

    def test_api(self) -> None:
        self.assert_seams(self.run_service_loader('api'),
                          'nova_emulator_threads.api.validation.extra_specs')

    def test_scheduler(self) -> None:
        self.assert_seams(self.run_service_loader('scheduler'),
                          'nova_emulator_threads.scheduler.filters')

    def test_compute(self) -> None:
        self.assert_seams(self.run_service_loader('compute'),
                          'nova_emulator_threads.virt.libvirt.driver')


class SeamInServiceTest(base.EmulatorThreadsTestBase):
    """Each service's own code path goes through the seams."""

    def setUp(self) -> None:
        super().setUp()
        self.start_two_hosts_for_moves()

    def test_api_numa_constraints(self) -> None:
        # nova-api computes the request's NUMA constraints (seam a): our
        # key alone gives the request spec an isolate policy.
        flavor = self.flavor(vcpus=2, hw__cpu_policy='dedicated',
                             hw__cpu_emulator_threads='isolate')
        server = self.boot(flavor)
        spec = objects.RequestSpec.get_by_instance_uuid(
            self.ctxt, server['id'])
        self.assertEqual('isolate', spec.numa_topology.emulator_threads_policy)

    def test_scheduler_placement_request_uses_our_overhead(self) -> None:
        # Seam (b): the PCPU the scheduler claims for the emulator threads
        # is overhead.estimate_instance_overhead's figure, not Nova's
        # constant: give the estimate another figure and placement follows.
        original = overhead.estimate_instance_overhead

        def two_for_isolate(request: Any,
                            shared_pool_vcpus: int = 0) -> dict[str, int]:
            return {rc: 2 * n for rc, n in original(
                request, shared_pool_vcpus).items()}

        self.useFixture(fixtures.MonkeyPatch(
            'nova_emulator_threads.overhead.estimate_instance_overhead',
            two_for_isolate))
        flavor = self.flavor(vcpus=2, hw__cpu_policy='dedicated',
                             hw__cpu_emulator_threads='isolate')
        server = self.boot(flavor)
        host = self.host_of(server)
        self.assertEqual(4, self.allocation(server['id'], host)['PCPU'])
        share = self.flavor(vcpus=2, hw__cpu_policy='dedicated',
                            hw__cpu_emulator_threads='share')
        server = self.boot(share)
        self.assertEqual(
            2, self.allocation(server['id'], self.host_of(server))['PCPU'])

    def test_compute_resize_claim(self) -> None:
        # nova-compute's resize claim computes the new NUMA constraints
        # itself (MoveClaim.numa_topology, seam a): the destination must
        # reserve the emulator pCPU of a flavor with our key alone.
        share = self.flavor(vcpus=2, hw__cpu_policy='dedicated',
                            hw__cpu_emulator_threads='share')
        isolate = self.flavor(vcpus=2, hw__cpu_policy='dedicated',
                              hw__cpu_emulator_threads='isolate')
        server = self.boot(share, host='host1')
        server = self._resize_server(server, isolate)
        self.assertEqual('host2', self.host_of(server))
        numa = self.instance_numa(server)
        self.assertEqual('isolate', numa.emulator_threads_policy)
        self.assertEqual(3, len(self.pinned('host2')))
        self.assertEqual(numa.cells[0].cpuset_reserved,
                         self.cputune(server, 'host2')['emulatorpin'])

    def test_compute_realtime_check(self) -> None:
        # The libvirt driver refuses realtime vCPUs with shared emulator
        # threads on a host without cpu_shared_set; it must see 'share'
        # in our key. (Called directly: our <emulatorpin> choice refuses
        # the same guest earlier in a real boot.)
        self.flags(cpu_shared_set=None, group='compute')
        driver = self.computes['host1'].driver
        flavor = objects.Flavor(
            vcpus=2, memory_mb=1024, extra_specs={
                'hw:cpu_policy': 'dedicated', 'hw:cpu_realtime': 'yes',
                'hw:cpu_realtime_mask': '^0',
                'hw:cpu_emulator_threads': 'share'})
        image = objects.ImageMeta(properties=objects.ImageMetaProps())
        self.assertRaises(
            nova_exception.RealtimeMaskNotFoundOrInvalid,
            driver._get_guest_memory_backing_config, None, None, flavor,
            image)
        flavor.extra_specs['hw:cpu_emulator_threads'] = 'isolate'
        driver._get_guest_memory_backing_config(None, None, flavor, image)
