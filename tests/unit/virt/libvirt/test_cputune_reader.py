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

"""Tests for the ``<cputune>`` reader, on libvirt's domain XML."""

from lxml import etree

from nova_emulator_threads import exception
from nova_emulator_threads.virt.libvirt import cputune
from nova_emulator_threads.virt.libvirt import cputune_reader
from tests.unit import base


class ParseCPUTuneTestCase(base.TestCase):

    # Trimmed from `virsh dumpxml` of a running guest (libvirt 9.0).
    DOMAIN = """<domain type='kvm' id='3'
        xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
      <name>instance-00000003</name>
      <vcpu placement='static'>4</vcpu>
      <iothreads>1</iothreads>
      <cputune>
        <shares>4096</shares>
        <!-- written by nova-compute -->
        <vcpupin vcpu='0' cpuset='12'/>
        <vcpupin vcpu='1' cpuset='32'/>
        <vcpupin vcpu='2' cpuset='13'/>
        <vcpupin vcpu='3' cpuset='33'/>
        <emulatorpin cpuset='14'/>
        <iothreadpin iothread='1' cpuset='14'/>
        <vcpusched vcpus='1-3' scheduler='fifo' priority='1'/>
      </cputune>
      <numatune>
        <memory mode='strict' nodeset='1'/>
      </numatune>
    </domain>"""

    def test_domain(self):
        tune = cputune_reader.parse_cputune(self.DOMAIN)
        self.assertEqual(cputune.CPUTune(
            vcpupins={0: frozenset({12}), 1: frozenset({32}),
                      2: frozenset({13}), 3: frozenset({33})},
            emulatorpin=frozenset({14}),
            iothreadpins={1: frozenset({14})},
            vcpusched=(cputune.VCPUSched(frozenset({1, 2, 3}), 'fifo', 1),)),
            tune)

    def test_element_and_bytes(self):
        root = etree.fromstring(self.DOMAIN)
        expected = cputune_reader.parse_cputune(self.DOMAIN)
        self.assertEqual(expected, cputune_reader.parse_cputune(root))
        self.assertEqual(expected,
                         cputune_reader.parse_cputune(root.find('cputune')))
        self.assertEqual(expected,
                         cputune_reader.parse_cputune(self.DOMAIN.encode()))

    def test_encoding_declaration(self):
        text = "<?xml version='1.0' encoding='UTF-8'?>\n" + self.DOMAIN
        self.assertEqual(cputune_reader.parse_cputune(self.DOMAIN),
                         cputune_reader.parse_cputune(text))

    def test_domain_without_cputune(self):
        self.assertEqual(cputune.CPUTune(), cputune_reader.parse_cputune(
            "<domain type='kvm'><name>x</name></domain>"))

    def test_vcpusched_without_priority(self):
        tune = cputune_reader.parse_cputune(
            "<cputune><vcpusched vcpus='0' scheduler='batch'/></cputune>")
        self.assertEqual(
            (cputune.VCPUSched(frozenset({0}), 'batch', None),),
            tune.vcpusched)

    def assertInvalid(self, xml, *fragments):
        exc = self.assertRaises(exception.InvalidDomainXML,
                                cputune_reader.parse_cputune, xml,
                                source='instance-00000003')
        message = str(exc)
        self.assertTrue(message.startswith(
            'Invalid libvirt domain XML instance-00000003: '), message)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_garbage(self):
        self.assertInvalid('not xml at all', 'not well-formed')
        self.assertInvalid('', 'not well-formed')
        self.assertInvalid('<cputune><vcpupin vcpu="0"', 'not well-formed')
        self.assertInvalid(b'\xff\xfe<', 'not well-formed')
        self.assertInvalid(42, 'expected XML text, got int')
        self.assertInvalid('<capabilities/>', 'root element is <capabilities>')
        self.assertInvalid('<domain><cputune/><cputune/></domain>',
                           '2 <cputune> elements')

    def test_bad_vcpupin(self):
        self.assertInvalid('<cputune><vcpupin cpuset="1"/></cputune>',
                           '<vcpupin> has no vcpu attribute')
        self.assertInvalid(
            '<cputune><vcpupin vcpu="x" cpuset="1"/></cputune>',
            "<vcpupin> has vcpu='x'")
        self.assertInvalid(
            '<cputune><vcpupin vcpu="-1" cpuset="1"/></cputune>',
            "vcpu='-1'")
        self.assertInvalid('<cputune><vcpupin vcpu="0"/></cputune>',
                           '<vcpupin> has no cpuset attribute')
        self.assertInvalid(
            '<cputune><vcpupin vcpu="0" cpuset="3-1"/></cputune>',
            '<vcpupin> Invalid CPU set', 'reversed')
        self.assertInvalid(
            '<cputune><vcpupin vcpu="0" cpuset="1,^1"/></cputune>',
            'names no CPU')
        self.assertInvalid(
            '<cputune><vcpupin vcpu="0" cpuset="0-99999999"/></cputune>',
            'too large')
        self.assertInvalid(
            '<cputune><vcpupin vcpu="0" cpuset="1"/>'
            '<vcpupin vcpu="0" cpuset="2"/></cputune>',
            'vCPU 0 has more than one <vcpupin>')

    def test_bad_emulator_and_iothread_pins(self):
        self.assertInvalid(
            '<cputune><emulatorpin cpuset="1"/><emulatorpin cpuset="2"/>'
            '</cputune>', 'more than one <emulatorpin>')
        self.assertInvalid('<cputune><emulatorpin/></cputune>',
                           '<emulatorpin> has no cpuset')
        self.assertInvalid(
            '<cputune><iothreadpin iothread="0" cpuset="1"/></cputune>',
            "iothread='0'", 'at least 1')
        self.assertInvalid(
            '<cputune><iothreadpin iothread="1" cpuset="1"/>'
            '<iothreadpin iothread="1" cpuset="1"/></cputune>',
            'I/O thread 1 has more than one')

    def test_bad_vcpusched(self):
        self.assertInvalid(
            '<cputune><vcpusched vcpus="0" scheduler="deadline"/></cputune>',
            "scheduler='deadline'", 'fifo')
        self.assertInvalid(
            '<cputune><vcpusched vcpus="0" scheduler="fifo" '
            'priority="high"/></cputune>', "priority='high'")
        self.assertInvalid(
            '<cputune><vcpusched scheduler="fifo"/></cputune>',
            '<vcpusched> has no vcpus attribute')

    def test_entities_are_not_expanded(self):
        # A billion laughs must neither expand nor hang. Unexpanded
        # entities are inert, so the document may parse (and then the pins
        # are all there is); recent libxml2 refuses it outright.
        laughs = ('<!DOCTYPE d [<!ENTITY a "1,1,1,1,1,1,1,1,1,1">'
                  + ''.join('<!ENTITY %s "&%s;&%s;&%s;&%s;&%s;&%s;&%s;&%s;">'
                            % ((chr(ord('b') + i),) + (chr(ord('a') + i),) * 8)
                            for i in range(8))
                  + ']>'
                  '<domain><cputune><vcpupin vcpu="0" cpuset="1"/>&i;'
                  '</cputune></domain>')
        try:
            tune = cputune_reader.parse_cputune(laughs)
        except exception.InvalidDomainXML as exc:
            self.assertIn('not well-formed', str(exc))
        else:
            self.assertEqual(cputune.CPUTune(vcpupins={0: frozenset({1})}),
                             tune)
        # An external entity is never fetched: as content it stays an
        # inert reference, in an attribute XML forbids it.
        external = ('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                    '<cputune>&x;<emulatorpin cpuset="1"/></cputune>')
        self.assertEqual(cputune.CPUTune(emulatorpin=frozenset({1})),
                         cputune_reader.parse_cputune(external))
        self.assertInvalid(
            '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
            '<cputune><vcpupin vcpu="0" cpuset="&x;"/></cputune>',
            'not well-formed')
