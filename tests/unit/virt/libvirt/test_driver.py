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

"""The compute driver's own methods (the XML is proved by the functional
tests, which run the whole driver)."""

from nova import exception as nova_exception
from nova import objects
from nova.virt import emulator_threads
from nova.virt.libvirt import driver as nova_driver
from oslotest import base

from nova_emulator_threads.virt.libvirt import driver
from tests.unit import nova_patch_fixture


def instance(vcpus: int = 2, **extra_specs: str) -> objects.Instance:
    return objects.Instance(
        flavor=nova_patch_fixture.flavor(vcpus, **extra_specs),
        system_metadata={}, image_ref='')


class TestLibvirtDriver(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        # The method reads nothing of the host: no connection needed.
        self.driver = driver.LibvirtDriver.__new__(driver.LibvirtDriver)

    def test_is_novas_libvirt_driver(self) -> None:
        self.assertTrue(issubclass(driver.LibvirtDriver,
                                   nova_driver.LibvirtDriver))

    def test_shim_exports_it(self) -> None:
        self.assertIs(driver.LibvirtDriver, emulator_threads.LibvirtDriver)

    def test_estimate_instance_overhead(self) -> None:
        ded = {'hw__cpu_policy': 'dedicated'}
        self.assertEqual({'PCPU': 1}, self.driver.estimate_instance_overhead(
            instance(hw__cpu_emulator_threads='isolate', **ded)))
        self.assertEqual({'PCPU': 1}, self.driver.estimate_instance_overhead(
            instance(hw__emulator_threads_policy='isolate', **ded)))
        self.assertEqual({}, self.driver.estimate_instance_overhead(
            instance(hw__cpu_emulator_threads='share', **ded)))
        self.assertEqual({}, self.driver.estimate_instance_overhead(
            instance(**ded)))
        self.assertEqual({}, self.driver.estimate_instance_overhead(
            instance()))

    def test_estimate_instance_overhead_bad_flavor(self) -> None:
        exc = self.assertRaises(
            nova_exception.Invalid, self.driver.estimate_instance_overhead,
            instance(hw__cpu_policy='dedicated',
                     hw__cpu_emulator_threads='isolate',
                     hw__emulator_threads_policy='share'))
        self.assertIn("hw:emulator_threads_policy='share'",
                      exc.format_message())
