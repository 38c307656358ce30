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

from nova.virt import emulator_threads
from nova.virt.libvirt import driver as nova_driver

from nova_emulator_threads.virt.libvirt import driver
from tests.unit import base


class TestLibvirtDriver(base.TestCase):

    def test_is_novas_libvirt_driver(self) -> None:
        self.assertTrue(issubclass(driver.LibvirtDriver,
                                   nova_driver.LibvirtDriver))

    def test_shim_exports_it(self) -> None:
        self.assertIs(driver.LibvirtDriver, emulator_threads.LibvirtDriver)
