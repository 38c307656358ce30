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


"""``host.libvirt_domains`` on libvirt's test driver (``test:///<file>``).

The test driver is libvirt itself (the same XML parser, the same pin
calls, the same error codes) with an in-memory hypervisor, so these tests
need libvirt-python but no daemon.
"""


import ddt

from nova_emulator_threads import exception
from nova_emulator_threads.host import libvirt_domains
from tests.unit import base
from tests.unit.host import fakehost
from tests.unit.host import testdriver


class LibvirtDomainsTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.node = self.useFixture(testdriver.TestDriverFixture([
            testdriver.isolcpus_guest(),
            fakehost.domain_xml('plain', testdriver.UUID_A, {0: '4', 1: '5'}),
        ]))

    def test_read_running_domains(self) -> None:
        domains = libvirt_domains.list_domains(self.node.conn)
        self.assertEqual(['instance-00000009', 'plain'],
                         [d.name for d in domains])
        nova, plain = domains
        self.assertEqual(fakehost.UUID_09, nova.uuid)
        self.assertTrue(nova.active)
        self.assertTrue(nova.persistent)
        self.assertEqual({0: {1}, 1: {2}, 2: {3}}, nova.vcpu_pins)
        self.assertEqual({1, 2, 3}, nova.emulator_pins)
        self.assertEqual({1: {1, 2, 3}}, nova.iothread_pins)
        self.assertEqual((1,), nova.live.iothread_ids)
        self.assertEqual({1, 2, 3}, nova.config.cputune.emulatorpin)
        self.assertEqual(libvirt_domains.NovaMetadata(
            instance_name='vnf-9', flavor_name='nfv.3', vcpus=3,
            memory_mb=2048, extra_specs={'hw:cpu_policy': 'dedicated'},
            image_props={}), nova.nova)
        # No <emulatorpin>: libvirt reports every host CPU of its map.
        self.assertIsNone(plain.nova)
        self.assertIsNone(plain.live.cputune.emulatorpin)
        self.assertEqual(frozenset(range(8)), plain.emulator_pins)
        self.assertEqual({}, plain.iothread_pins)

    def test_inactive_domains_are_not_listed(self) -> None:
        self.node.conn.lookupByName('plain').destroy()
        self.assertEqual(['instance-00000009'], [
            d.name for d in libvirt_domains.list_domains(self.node.conn)])

    def test_live_pin_shows_in_live_not_config(self) -> None:
        dom = self.node.conn.lookupByName('instance-00000009')
        dom.pinEmulator(libvirt_domains.map_from_cpus(frozenset([0]), 8),
                        testdriver.libvirt.VIR_DOMAIN_AFFECT_LIVE)
        domain = libvirt_domains.read_domain(dom)
        self.assertEqual({0}, domain.emulator_pins)
        self.assertEqual({0}, domain.live.cputune.emulatorpin)
        self.assertEqual({1, 2, 3}, domain.config.cputune.emulatorpin)

    def test_lookup(self) -> None:
        conn = self.node.conn
        self.assertEqual('plain',
                         libvirt_domains.lookup_domain(conn, 'plain').name())
        self.assertEqual('plain', libvirt_domains.lookup_domain(
            conn, testdriver.UUID_A).name())
        exc = self.assertRaises(exception.DomainNotFound,
                                libvirt_domains.lookup_domain, conn, 'nope')
        self.assertIn("'nope'", str(exc))

    def test_read_only_connection(self) -> None:
        conn = libvirt_domains.open_connection(self.node.uri)
        self.addCleanup(conn.close)
        self.assertEqual(2, len(libvirt_domains.list_domains(conn)))

    def test_bad_uri_is_one_sentence(self) -> None:
        exc = self.assertRaises(exception.HostInspectionFailed,
                                libvirt_domains.open_connection,
                                'test:///nonexistent/node.xml')
        self.assertIn('test:///nonexistent/node.xml', str(exc))
        self.assertNotIn('\n', str(exc))

    def test_cpu_maps(self) -> None:
        self.assertEqual((False, True, False, True),
                         libvirt_domains.map_from_cpus(frozenset({1, 3}), 4))
        self.assertEqual({1, 3}, libvirt_domains.cpus_from_map(
            [False, True, False, True]))


@ddt.ddt
class DomainXMLTestCase(base.TestCase):

    def test_chapter_xml(self) -> None:
        tree = self.useFixture(fakehost.HostTree())
        config = libvirt_domains.parse_domain_xml(fakehost.chapter_1d(tree))
        self.assertEqual(4, config.vcpus)
        self.assertEqual({0: {34}, 1: {14}, 2: {10}, 3: {30}},
                         config.cputune.vcpupins)
        self.assertEqual({10, 14, 30, 34}, config.cputune.emulatorpin)
        self.assertEqual((), config.iothread_ids)
        self.assertEqual('nfv.4', config.nova.flavor_name)

    def test_older_nova_without_extra_specs(self) -> None:
        nova = dict(fakehost.NOVA_09, extra_specs=None)
        config = libvirt_domains.parse_domain_xml(fakehost.domain_xml(
            'g', testdriver.UUID_B, {0: '1'}, nova=nova))
        self.assertIsNone(config.nova.extra_specs)
        self.assertEqual(3, config.nova.vcpus)

    def test_image_properties_and_iothread_ids(self) -> None:
        nova = dict(fakehost.NOVA_09,
                    image_props={'hw_cpu_policy': 'dedicated'})
        xml = fakehost.domain_xml('g', testdriver.UUID_B, {0: '1'}, nova=nova,
                                  vcpu_cpuset='0-3')
        xml = xml.replace('<cputune>', '<iothreadids><iothread id="4"/>'
                          '<iothread id="2"/></iothreadids><cputune>')
        config = libvirt_domains.parse_domain_xml(xml)
        self.assertEqual({'hw_cpu_policy': 'dedicated'},
                         config.nova.image_props)
        self.assertEqual((2, 4), config.iothread_ids)
        self.assertEqual({0, 1, 2, 3}, config.vcpu_cpuset)

    def test_other_metadata_is_not_nova(self) -> None:
        xml = fakehost.domain_xml('g', testdriver.UUID_B, {0: '1'}).replace(
            '<memory', '<metadata><x:instance xmlns:x="urn:other"/>'
                       '</metadata><memory', 1)
        self.assertIsNone(libvirt_domains.parse_domain_xml(xml).nova)

    @ddt.unpack
    @ddt.data(
        ('<domain', 'not well-formed'),
        ('<node/>', '<domain>'),
        ('<domain><vcpu>x</vcpu></domain>', "'x'"),
        ('<domain><vcpu cpuset="9-1">2</vcpu></domain>', '9-1'),
        ('<domain><vcpu>1</vcpu><cputune><emulatorpin cpuset="a"/>'
         '</cputune></domain>', 'emulatorpin'))
    def test_invalid_xml(self, xml: str, words: str) -> None:
        exc = self.assertRaises(exception.InvalidDomainXML,
                                libvirt_domains.parse_domain_xml, xml,
                                'file.xml')
        self.assertIn('file.xml', str(exc))
        self.assertIn(words, str(exc))
