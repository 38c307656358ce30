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

"""Guest NUMA layout and page size keys: each key, each error."""

from typing import Any

import ddt

from nova_emulator_threads import cpu_request_numa
from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from tests.unit import cpu_request_base
from tests.unit.cpu_request_base import DEDICATED
from tests.unit.cpu_request_base import parse

S, L, A = fields.MEMPAGES_SMALL, fields.MEMPAGES_LARGE, fields.MEMPAGES_ANY


@ddt.ddt
class NUMATestCase(cpu_request_base.TestCase):

    @ddt.data(
        # Auto layout: Nova's, built by the engine.
        ({'hw:numa_nodes': '2'}, {}, 2, None, None),
        ({}, {'hw_numa_nodes': 2}, 2, None, None),
        ({}, {'hw_numa_nodes': '2'}, 2, None, None),
        # Manual layout.
        ({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0', 'hw:numa_mem.0': '512',
          'hw:numa_cpus.1': '1-3', 'hw:numa_mem.1': '1536'}, {}, 2,
         ({0}, {1, 2, 3}), (512, 1536)),
        # With one node, hw:numa_nodes may be left out.
        ({'hw:numa_cpus.0': '0-3', 'hw:numa_mem.0': '2048'}, {}, None,
         ({0, 1, 2, 3},), (2048,)),
        ({'hw:numa_nodes': '2'},
         {'hw_numa_cpus': [{0, 2}, {1, 3}], 'hw_numa_mem': [1024, 1024]}, 2,
         ({0, 2}, {1, 3}), (1024, 1024)),
        ({'hw:numa_nodes': '2'},
         {'hw_numa_cpus': ['0,2', '1,3'], 'hw_numa_mem': ['1024', '1024']},
         2, ({0, 2}, {1, 3}), (1024, 1024)),
        # Flavor cpus with image mem: two different keys may mix.
        ({'hw:numa_cpus.0': '0-3'}, {'hw_numa_mem': [2048]}, None,
         ({0, 1, 2, 3},), (2048,)),
    )
    @ddt.unpack
    def test_layout(self, specs: dict[str, str], props: dict[str, Any],
                    nodes: int | None, cpus: tuple[set[int], ...] | None,
                    mem: tuple[int, ...] | None) -> None:
        request = parse(dict(DEDICATED, **specs), props)
        self.assertEqual((nodes, cpus, mem), (
            request.numa_nodes, request.numa_cpus, request.numa_mem))

    def test_nodes_without_pinning(self) -> None:
        request = parse({'hw:numa_nodes': '2'})
        self.assertEqual((None, 2), (request.cpu_policy, request.numa_nodes))
        self.assertTrue(request.needs_numa_topology)
        self.assertEqual(frozenset(), request.dedicated_cpus)

    def test_mappings_ignored_without_a_topology(self) -> None:
        # As in Nova: no pinning, nodes or page size, no topology; the
        # mapping (even an incomplete one) has no effect.
        request = parse({'hw:numa_cpus.0': '0-3'})
        self.assertFalse(request.needs_numa_topology)
        self.assertIsNone(request.numa_cpus)

    @ddt.data(
        ({'hw:numa_nodes': '0'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_nodes', '0')], 'at least 1'),
        ({'hw:numa_nodes': 'two'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_nodes', 'two')], 'integer'),
        ({}, {'hw_numa_nodes': 0}, exception.InvalidExtraSpec,
         [('hw_numa_nodes', 0)], 'at least 1'),
        ({'hw:numa_nodes': '2'}, {'hw_numa_nodes': 2},
         exception.ConflictingExtraSpecs,
         [('hw_numa_nodes', 2), ('hw:numa_nodes', '2')], 'override'),
        ({'hw:numa_nodes': '3'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_nodes', 3)], 'evenly'),
        ({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0-1',
          'hw:numa_mem.0': '1024'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_cpus.0', '0-1')], 'needs one entry for each'),
        ({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0-1',
          'hw:numa_cpus.1': '2-3'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_cpus.0', '0-1')], 'hw:numa_mem.N'),
        ({'hw:numa_mem.0': '2048'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_mem.0', '2048')], 'hw:numa_cpus.N'),
        ({'hw:numa_cpus.0': '0-4', 'hw:numa_mem.0': '2048'}, {},
         exception.InvalidExtraSpec, [('hw:numa_cpus.0', '0-4')],
         "vCPU 4 is not one of the flavor's vCPUs 0-3"),
        ({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0-2',
          'hw:numa_mem.0': '1024', 'hw:numa_cpus.1': '2-3',
          'hw:numa_mem.1': '1024'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_cpus.1', '2-3')], 'vCPU 2 is already'),
        ({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0',
          'hw:numa_mem.0': '1024', 'hw:numa_cpus.1': '2-3',
          'hw:numa_mem.1': '1024'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_cpus.1', '2-3')], 'vCPU(s) 1 are not'),
        ({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0-1',
          'hw:numa_mem.0': '1024', 'hw:numa_cpus.1': '2-3',
          'hw:numa_mem.1': '512'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_mem.1', '512')], 'adds up to 1536 MiB'),
        ({'hw:numa_cpus.0': '0-3', 'hw:numa_mem.0': '0'}, {},
         exception.InvalidExtraSpec, [('hw:numa_mem.0', '0')],
         'at least 1'),
        ({'hw:numa_cpus.0': '', 'hw:numa_mem.0': '2048'}, {},
         exception.InvalidExtraSpec, [('hw:numa_cpus.0', '')], 'non-empty'),
        ({'hw:numa_cpus.0': '0-3', 'hw:numa_mem.0': '2048',
          'hw:numa_cpus.2': '0'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_cpus.2', '0')], 'hw:numa_cpus.1 is missing'),
        ({'hw:numa_cpus.01': '0-3', 'hw:numa_mem.0': '2048'}, {},
         exception.InvalidExtraSpec, [('hw:numa_cpus.01', '0-3')],
         'number from 0 to 127'),
        ({'hw:numa_cpus.128': '0-3'}, {}, exception.InvalidExtraSpec,
         [('hw:numa_cpus.128', '0-3')], 'number from 0 to 127'),
        ({'hw:numa_cpus.0': '0-3', 'hw:numa_mem.0': '2048'},
         {'hw_numa_cpus': [{0, 1, 2, 3}]}, exception.ConflictingExtraSpecs,
         [('hw_numa_cpus', [{0, 1, 2, 3}]), ('hw:numa_cpus.0', '0-3')],
         'override'),
        ({'hw:numa_cpus.0': '0-3'}, {'hw_numa_mem': 2048},
         exception.InvalidExtraSpec, [('hw_numa_mem', 2048)], 'a list'),
        ({'hw:numa_cpus.0': '0-3'}, {'hw_numa_mem': [-2048]},
         exception.InvalidExtraSpec, [('hw_numa_mem', -2048)], 'at least 1'),
        ({'hw:numa_mem.0': '2048'}, {'hw_numa_cpus': [{-1}]},
         exception.InvalidExtraSpec, [('hw_numa_cpus', {-1})], 'vCPU ids'),
        ({'hw:numa_mem.0': '2048'}, {'hw_numa_cpus': ['0-x']},
         exception.InvalidCPUSpec, [('hw_numa_cpus', '0-x')], 'not a CPU'),
    )
    @ddt.unpack
    def test_invalid(self, specs: dict[str, str], props: dict[str, Any],
                     exc_class: type[exception.Invalid],
                     names: list[tuple[str, Any]], fragment: str) -> None:
        message = self.assertRejected(exc_class, names,
                                      dict(DEDICATED, **specs), props)
        self.assertIn(fragment, message)

    def test_malformed_mapping_without_a_topology(self) -> None:
        self.assertRejected(exception.InvalidCPUSpec,
                            [('hw:numa_cpus.0', '0-x')],
                            {'hw:numa_cpus.0': '0-x'})

    def test_key_constants(self) -> None:
        self.assertEqual(
            ('hw:numa_nodes',
             'hw_numa_nodes',
             'hw:numa_cpus.',
             'hw:numa_mem.',
             'hw_numa_cpus',
             'hw_numa_mem'),
            (cpu_request_numa.NUMA_NODES_KEY,
             cpu_request_numa.NUMA_NODES_PROP,
             cpu_request_numa.NUMA_CPUS_KEY_PREFIX,
             cpu_request_numa.NUMA_MEM_KEY_PREFIX,
             cpu_request_numa.NUMA_CPUS_PROP,
             cpu_request_numa.NUMA_MEM_PROP))


@ddt.ddt
class PageSizeTestCase(cpu_request_base.TestCase):

    @ddt.data(
        ('small', None, S), ('large', None, L), ('any', None, A),
        ('2048', None, 2048), ('4', None, 4), ('2MiB', None, 2048),
        ('2MB', None, 2048), ('1GB', None, 1048576), ('1GiB', None, 1048576),
        ('4KiB', None, 4), ('2048B', None, 2), ('2.5MiB', None, 2560),
        # The image chooses only where the flavor leaves a choice.
        ('large', '1GiB', 1048576), ('any', 'small', S),
        ('large', 'small', S), ('any', '2048', 2048),
    )
    @ddt.unpack
    def test_page_size(self, flavor: str, image: str | None,
                       expected: int) -> None:
        props = {'hw_mem_page_size': image} if image else {}
        request = parse({'hw:mem_page_size': flavor}, props)
        self.assertEqual(expected, request.pagesize)
        self.assertTrue(request.needs_numa_topology)

    @ddt.data(
        ('huge', None, exception.InvalidExtraSpec,
         [('hw:mem_page_size', 'huge')], "'small', 'large', 'any'"),
        ('2M', None, exception.InvalidExtraSpec,
         [('hw:mem_page_size', '2M')], "'small', 'large', 'any'"),
        ('', None, exception.InvalidExtraSpec,
         [('hw:mem_page_size', '')], "'small', 'large', 'any'"),
        ('0', None, exception.InvalidExtraSpec,
         [('hw:mem_page_size', '0')], 'positive'),
        ('1000b', None, exception.InvalidExtraSpec,
         [('hw:mem_page_size', '1000b')], 'whole number of KiB'),
        (None, '2048', exception.InvalidExtraSpec,
         [('hw_mem_page_size', '2048')], 'large or any'),
        ('small', 'large', exception.ConflictingExtraSpecs,
         [('hw_mem_page_size', 'large'), ('hw:mem_page_size', 'small')],
         'large or any'),
        ('2048', '2048', exception.ConflictingExtraSpecs,
         [('hw_mem_page_size', '2048'), ('hw:mem_page_size', '2048')],
         'large or any'),
        ('large', 'huge', exception.InvalidExtraSpec,
         [('hw_mem_page_size', 'huge')], "'small', 'large', 'any'"),
    )
    @ddt.unpack
    def test_invalid(self, flavor: str | None, image: str | None,
                     exc_class: type[exception.Invalid],
                     names: list[tuple[str, Any]], fragment: str) -> None:
        specs = {'hw:mem_page_size': flavor} if flavor is not None else {}
        props = {'hw_mem_page_size': image} if image else {}
        self.assertIn(fragment,
                      self.assertRejected(exc_class, names, specs, props))
