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

"""The capabilities reader against Nova's libvirt driver, and bad input."""

import functools
import random
import types
import warnings

import ddt
from oslo_config import fixture as config_fixture

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import nova.conf
    from nova import objects
    from nova.virt.libvirt import config as vconfig
    from nova.virt.libvirt import driver as libvirt_driver
    from nova.virt.libvirt import host as libvirt_host

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit.virt import cases

CONF = nova.conf.CONF
# The driver reads the per-physnet groups, which Nova registers at start.
nova.conf.neutron.register_dynamic_opts(CONF)
objects.register_all()


def nova_driver_topology(caps_xml: str, online: set[int]):
    """Run Nova's own ``_get_host_numa_topology`` on this XML."""
    caps = vconfig.LibvirtConfigCaps()
    caps.parse_str(caps_xml)
    cpu_map = [cpu in online for cpu in range(max(online) + 1)]
    connection = types.SimpleNamespace(
        getCPUMap=lambda: (len(cpu_map), cpu_map, len(online)))
    host = types.SimpleNamespace(get_capabilities=lambda: caps,
                                 get_connection=lambda: connection)
    host.get_online_cpus = functools.partial(
        libvirt_host.Host.get_online_cpus, host)
    driver = types.SimpleNamespace(_host=host, _reserved_hugepages={},
                                   _has_numa_support=lambda: True)
    for name in ('_get_vcpu_available', '_get_pcpu_available'):
        setattr(driver, name, functools.partial(
            getattr(libvirt_driver.LibvirtDriver, name), driver))
    return libvirt_driver.LibvirtDriver._get_host_numa_topology(driver)


def ordered(cell) -> tuple:
    """A cell's content, with every set in its iteration order."""
    return (cell.id, list(cell.cpuset), list(cell.pcpuset), cell.memory,
            [list(sib) for sib in cell.siblings],
            [(p.size_kb, p.total, p.used, p.reserved)
             for p in cell.mempages], cell.socket)


@ddt.ddt
class TestCapsMatchNovaDriver(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.flags = self.useFixture(config_fixture.Config(CONF))

    def test_same_topology_as_nova_driver(self) -> None:
        rng = random.Random(4242)
        # A loop, not cases: generated hosts, stopping at the first that
        # differs from Nova's reading, which the message prints.
        for _ in range(300):
            xml, (dedicated, shared, _pinned), _host = cases.random_host(rng)
            self.flags.config(cpu_dedicated_set=dedicated or None,
                              cpu_shared_set=shared or None,
                              group='compute')
            ours = capabilities.host_topology_from_caps(xml, dedicated, shared)
            # Every CPU in the XML is online.
            online = set(range(sum(len(c.findall('cpus/cpu')) for c in
                                   vconfig.etree.fromstring(xml).findall(
                                       'host/topology/cells/cell'))))
            nova = nova_driver_topology(xml, online)
            self.assertEqual([ordered(c) for c in nova.cells],
                             [ordered(c) for c in ours.cells],
                             'dedicated=%r shared=%r\n%s'
                             % (dedicated, shared, xml))
            self.assertEqual(frozenset(cpuset.parse_cpu_spec(shared)),
                             ours.cpu_shared_set)

    @ddt.data('two-socket-smt', 'four-core-housekeeping')
    def test_bundled_example_hosts(self, name: str) -> None:
        from nova_emulator_threads import data
        with open(data.example_host_path(name)) as f:
            xml = f.read()
        ours = capabilities.host_topology_from_caps(xml)
        self.assertTrue(ours.cells, name)


class TestCapsBadInput(base.TestCase):

    XML = cases.caps_xml(2, 2, 2, True, [1024, 1024], None)

    def assertInvalid(self, exc_type, fragment, *args, **kwargs) -> None:
        exc = self.assertRaises(exc_type, capabilities.host_topology_from_caps,
                                *args, **kwargs)
        self.assertIn(fragment, str(exc))
        self.assertEqual(1, len(str(exc).splitlines()))

    def test_not_xml(self) -> None:
        self.assertInvalid(exception.InvalidHostCapabilities,
                           'not well-formed XML', '<capabilities>')

    def test_wrong_root(self) -> None:
        self.assertInvalid(exception.InvalidHostCapabilities,
                           'expected <capabilities>', '<domain/>')

    def test_no_topology(self) -> None:
        self.assertInvalid(exception.InvalidHostCapabilities,
                           'no NUMA topology',
                           '<capabilities><host/></capabilities>')

    def test_bad_cpu_id(self) -> None:
        self.assertInvalid(
            exception.InvalidHostCapabilities, "attribute 'id'",
            self.XML.replace('cpu id="0"', 'cpu id="zero"'))

    def test_entities_are_not_expanded(self) -> None:
        bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                '<capabilities><host>&lol2;</host></capabilities>')
        self.assertInvalid(exception.InvalidHostCapabilities,
                           'no NUMA topology', bomb)

    def test_deep_nesting(self) -> None:
        deep = '<a>' * 5000 + '</a>' * 5000
        self.assertInvalid(exception.InvalidHostCapabilities,
                           'not well-formed XML', deep)

    def test_dedicated_not_on_host(self) -> None:
        self.assertInvalid(exception.Invalid,
                           "[compute] cpu_dedicated_set='0-99'",
                           self.XML, cpu_dedicated_set='0-99')

    def test_overlapping_sets(self) -> None:
        self.assertInvalid(exception.Invalid, 'must not overlap', self.XML,
                           cpu_dedicated_set='0-3', cpu_shared_set='3-4')

    def test_pinned_outside_dedicated(self) -> None:
        self.assertInvalid(exception.Invalid, "pinned='5'", self.XML,
                           cpu_dedicated_set='0-3', cpu_shared_set='4-7',
                           pinned='5')

    def test_malformed_range(self) -> None:
        self.assertInvalid(exception.InvalidCPUSpec,
                           '[compute] cpu_shared_set', self.XML,
                           cpu_shared_set='1-x')

    def test_huge_range(self) -> None:
        self.assertInvalid(exception.InvalidCPUSpec, 'too large', self.XML,
                           cpu_dedicated_set='0-99999999')
