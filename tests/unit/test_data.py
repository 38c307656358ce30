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

"""Tests for the bundled example hosts, read by Nova's own parser."""

import os

import ddt
from nova.virt.libvirt import config as vconfig

from nova_emulator_threads import data
from nova_emulator_threads import exception
from tests.unit import base


def _nova_caps(name):
    caps = vconfig.LibvirtConfigCaps()
    caps.parse_str(data.example_host_xml(name))
    return caps


@ddt.ddt
class ExampleHostsTestCase(base.TestCase):

    @ddt.data(*data.EXAMPLE_HOSTS)
    def test_paths(self, name):
        path = data.example_host_path(name)
        self.assertTrue(os.path.isabs(path))
        self.assertEqual('%s.xml' % name, os.path.basename(path))
        with open(path, encoding='utf-8') as f:
            self.assertEqual(data.example_host_xml(name), f.read())

    def test_default_host(self):
        self.assertEqual(data.example_host_path('two-socket-smt'),
                         data.example_host_path())

    @ddt.data('nope', '../two-socket-smt', 'two-socket-smt.xml', '')
    def test_unknown_host(self, name):
        exc = self.assertRaises(exception.Invalid,
                                data.example_host_path, name)
        self.assertIn('example host %r does not exist' % name, str(exc))
        self.assertIn('two-socket-smt, four-core-housekeeping', str(exc))
        self.assertRaises(exception.Invalid, data.example_host_xml, name)

    def test_two_socket_smt(self):
        caps = _nova_caps('two-socket-smt')
        self.assertEqual('x86_64', caps.host.cpu.arch)
        self.assertEqual((1, 10, 2), (caps.host.cpu.sockets,
                                      caps.host.cpu.cores,
                                      caps.host.cpu.threads))
        cells = caps.host.topology.cells
        self.assertEqual([0, 1], [cell.id for cell in cells])
        # A loop, not cases: both cells of the one host read above.
        for cell, first in zip(cells, (0, 10)):
            cpus = {cpu.id: cpu for cpu in cell.cpus}
            self.assertEqual(set(range(first, first + 10)) |
                             set(range(first + 20, first + 30)), set(cpus))
            for cpu_id, cpu in cpus.items():
                # Linux numbering: CPU N and N+20 are one core's threads.
                self.assertEqual({cpu_id % 20, cpu_id % 20 + 20},
                                 cpu.siblings)
                self.assertEqual(cell.id, cpu.socket_id)
            self.assertEqual(10, len({cpu.core_id for cpu in cell.cpus}))
            pages = {p.size: p.total for p in cell.mempages}
            self.assertEqual({4, 2048, 1048576}, set(pages))
            self.assertEqual((2048, 16), (pages[2048], pages[1048576]))
            # libvirt counts 4 KiB pages net of the huge pages.
            self.assertEqual(cell.memory,
                             sum(size * n for size, n in pages.items()))

    def test_four_core_housekeeping(self):
        caps = _nova_caps('four-core-housekeeping')
        self.assertEqual((1, 4, 1), (caps.host.cpu.sockets,
                                     caps.host.cpu.cores,
                                     caps.host.cpu.threads))
        (cell,) = caps.host.topology.cells
        self.assertEqual([(0, {0}), (1, {1}), (2, {2}), (3, {3})],
                         [(cpu.id, cpu.siblings) for cpu in cell.cpus])
        pages = {p.size: p.total for p in cell.mempages}
        self.assertEqual(2048, pages[2048])
        self.assertEqual(cell.memory,
                         sum(size * n for size, n in pages.items()))
