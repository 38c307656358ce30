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

from nova.tests.unit import matchers
from nova.virt import emulator_threads
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as nova_driver
from oslo_config import fixture as config_fixture

from nova_emulator_threads.virt.libvirt import bandwidth
from nova_emulator_threads.virt.libvirt import cputune_reader
from nova_emulator_threads.virt.libvirt import driver
from tests.unit import base


class TestLibvirtDriver(base.TestCase):

    def test_is_novas_libvirt_driver(self) -> None:
        self.assertTrue(issubclass(driver.LibvirtDriver,
                                   nova_driver.LibvirtDriver))

    def test_shim_exports_it(self) -> None:
        self.assertIs(driver.LibvirtDriver, emulator_threads.LibvirtDriver)


class TestGuestCPUTune(base.TestCase):
    """Nova's ``<cputune>`` plus the emulator threads' CFS bandwidth."""

    def test_keeps_novas_elements_and_adds_the_bandwidth(self) -> None:
        tune = vconfig.LibvirtConfigGuestCPUTune()
        tune.shares = 1024
        pin = vconfig.LibvirtConfigGuestCPUTuneVCPUPin()
        pin.id, pin.cpuset = 0, {3}
        tune.vcpupin = [pin]
        tune.emulatorpin = vconfig.LibvirtConfigGuestCPUTuneEmulatorPin()
        tune.emulatorpin.cpuset = {0}
        ours = driver.GuestCPUTune.from_nova(
            tune, bandwidth.EmulatorBandwidth(period=100000, quota=25000))
        self.assertThat(ours.to_xml(), matchers.XMLMatches("""
            <cputune>
              <shares>1024</shares>
              <emulatorpin cpuset="0"/>
              <vcpupin vcpu="0" cpuset="3"/>
              <emulator_period>100000</emulator_period>
              <emulator_quota>25000</emulator_quota>
            </cputune>"""))
        # What the audit and the tests read back.
        self.assertEqual(bandwidth.EmulatorBandwidth(100000, 25000),
                         cputune_reader.parse_cputune(ours.to_xml())
                         .emulator_bandwidth)

    def test_cpu_allocation_ratio(self) -> None:
        conf = self.useFixture(config_fixture.Config(driver.CONF))
        conf.config(cpu_allocation_ratio=None,
                    initial_cpu_allocation_ratio=4.0)
        self.assertEqual(4.0, driver.cpu_allocation_ratio())
        conf.config(cpu_allocation_ratio=16.0)
        self.assertEqual(16.0, driver.cpu_allocation_ratio())
