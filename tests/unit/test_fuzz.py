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

"""Hostile input: the three readers of untrusted text, fuzzed.

``cpu_request.parse_request`` (flavor extra specs and image properties),
``cpuset.parse_cpu_spec`` (CPU range strings) and
``virt.libvirt.capabilities.host_topology_from_caps`` (libvirt
capabilities XML, plus the
CPU sets of ``[compute]``) get arbitrary strings and bytes, and inputs
built to hurt: huge ranges (``0-99999999``), negative, non-numeric and
non-ASCII CPU ids, digit strings longer than ``int()`` converts, duplicate
keys (a cell or CPU listed twice), entity expansion (billion laughs,
external entities) and deeply nested XML.

Each input either parses or raises an ``EmulatorThreadsException`` with a
one-line message; no other exception escapes. Whatever parses must be
usable downstream without error (a request becomes a guest topology and
a placement request; a host takes a fit, an explanation and a claim).
Every example runs under hypothesis's deadline (1 s) and a hard timer
that interrupts one still running after ``HARD_BOUND`` seconds; CPU ids
are capped at ``cpuset.MAX_CPU_ID`` so that no range builds a set of a
hundred million ints (``TestMemoryBound`` measures it).

``TestCommandLine`` feeds representative cases to
``nova-emulator-threads plan``: exit status 2 and one line on stderr.
"""

import collections
import contextlib
import datetime
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import ddt
import fixtures
import hypothesis
import testtools
from hypothesis import strategies as st

from nova_emulator_threads import cpu_request
from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads import overhead
from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit.cmd import command
from tests.unit.virt import cases
from tests.unit.virt import nova_reference

nova_hardware = nova_reference.nova_hardware

#: Seconds after which an example still running is interrupted.
HARD_BOUND = 10

#: hypothesis's per-example deadline.
DEADLINE = datetime.timedelta(seconds=1)

FUZZ = hypothesis.settings(
    deadline=DEADLINE,
    suppress_health_check=[hypothesis.HealthCheck.too_slow,
                           hypothesis.HealthCheck.data_too_large,
                           hypothesis.HealthCheck.filter_too_much])

#: What the fuzzers saw, over every example of this process.
STATS: collections.Counter[str] = collections.Counter()

#: A line of /etc/passwd on every Linux machine: must never be echoed.
PASSWD_MARKER = 'root:x:0:0'


class Hung(AssertionError):
    """An example ran past ``HARD_BOUND``."""


@contextlib.contextmanager
def hard_time_bound(seconds: float = HARD_BOUND) -> Iterator[None]:
    """Interrupt the block with ``Hung`` after ``seconds``.

    Restores whatever timer was running before (a test-wide timeout, say)
    minus the time spent here.
    """
    def expired(signum: int, frame: Any) -> None:
        raise Hung('still running after %s s' % seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay:
            left = old_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001),
                             old_interval)


def assert_one_line(test: testtools.TestCase,
                    exc: exception.EmulatorThreadsException) -> str:
    message = str(exc)
    test.assertTrue(message.strip(), repr(exc))
    test.assertEqual([message], message.splitlines(), 'not one line')
    test.assertNotIn(PASSWD_MARKER, message)
    return message


# -- inputs ------------------------------------------------------------------

#: Numbers as text: huge, negative, non-ASCII digits, and what int() takes
#: but a CPU id is not.
HOSTILE_NUMBERS = (
    '0', '1', '-1', '8191', '8192', '99999999', '9' * 30, '9' * 5000,
    '0' * 5000, '١', '٣', '²', '０', '+1', '1_0', '0x1', '1e3', '1.5', 'nan',
    'inf', '', ' ', '\t1', '1\n', '\x00', '\u2028',
)
HOSTILE_RANGES = (
    '0-99999999', '0-' + '9' * 5000, '-1', '-1-3', '3-1', '1--2', '^',
    '^-1', '0-8191', '0-8191,^0-8191', '^0', ',,,', '1-3,^2', '١-٣', '0 - 3',
    '0-3-5', '^^1', '0-3,' * 2000,
)
_numbers = st.one_of(
    # Plausible ids too, so that some specs parse and are compared with
    # Nova's parser.
    st.integers(0, 64).map(str), st.sampled_from(HOSTILE_NUMBERS),
    st.integers(-10 ** 12, 10 ** 12).map(str))


@st.composite
def cpu_specs(draw: st.DrawFn) -> str:
    """Range strings: ids, ranges and exclusions of hostile numbers."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(('id', 'id', 'range', 'range', 'exclude',
                                     'junk')))
        if kind == 'id':
            parts.append(draw(_numbers))
        elif kind == 'range':
            parts.append('%s-%s' % (draw(_numbers), draw(_numbers)))
        elif kind == 'exclude':
            parts.append('^' + draw(_numbers))
        else:
            parts.append(draw(st.text(max_size=6)))
    return draw(st.sampled_from((',', ', ', ';', ''))).join(parts)


any_cpu_spec = st.one_of(
    cpu_specs(), st.sampled_from(HOSTILE_RANGES), st.text(max_size=40),
    st.text(alphabet='0123456789-^, ١²０\t', max_size=30))

#: Our keys and Nova's, each with its valid and hostile values.
POLICY_KEYS = (
    'hw:cpu_policy', 'hw:cpu_thread_policy', 'hw:cpu_emulator_threads',
    'hw:emulator_threads_policy', 'hw:cpu_dedicated_mask',
    'hw:cpu_realtime', 'hw:cpu_realtime_mask', 'hw:numa_nodes',
    'hw:numa_cpus.0', 'hw:numa_cpus.1', 'hw:numa_cpus.' + '9' * 5000,
    'hw:numa_mem.0', 'hw:numa_mem.1', 'hw:numa_mem.-1', 'hw:mem_page_size',
    'resources:VCPU', 'resources:PCPU', 'resources1:PCPU',
    'resources_x:VCPU', 'trait:HW_CPU_HYPERTHREADING',
    'trait1:HW_CPU_HYPERTHREADING', 'hw:cpu_policy\n', 'HW:CPU_POLICY',
)
POLICY_VALUES = (
    'dedicated', 'shared', 'mixed', 'share', 'isolate', 'prefer', 'require',
    'isolated', 'Dedicated', 'yes', 'no', 'true', 'false', 'required',
    'forbidden', 'small', 'large', 'any', '2048', '2MB', '1GB', '1GiB',
    '0KB', '1.5KB', '-1GB', '9' * 5000 + 'MB', '1e999999', 'infKB',
) + HOSTILE_NUMBERS + HOSTILE_RANGES
IMAGE_PROPS = (
    'hw_cpu_policy', 'hw_cpu_thread_policy', 'hw_cpu_realtime_mask',
    'hw_numa_nodes', 'hw_numa_cpus', 'hw_numa_mem', 'hw_mem_page_size',
    'traits_required',
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 30, 10 ** 30) |
    st.floats() | st.text(max_size=10) | st.sampled_from(POLICY_VALUES),
    lambda inner: st.lists(inner, max_size=4) | st.frozensets(
        st.integers(-3, 10), max_size=4) | st.dictionaries(
        st.text(max_size=5), inner, max_size=3),
    max_leaves=4)
_spec_values = st.sampled_from(POLICY_VALUES) | st.text(max_size=12)
extra_specs = st.dictionaries(
    st.sampled_from(POLICY_KEYS) | st.text(max_size=20), _spec_values,
    max_size=6)
image_props = st.none() | st.dictionaries(
    st.sampled_from(IMAGE_PROPS) | st.text(max_size=10), _json, max_size=3)
_amounts = st.integers(-3, 12) | st.sampled_from(
    (0, 8192, 8193, 10 ** 30, True, None, '2', '9' * 5000, 'x', 2.0, []))


@st.composite
def entity_prolog(draw: st.DrawFn) -> tuple[str, str]:
    """A DTD with entities (expanding, external) and where to use them."""
    kind = draw(st.sampled_from(('none', 'none', 'laughs', 'external',
                                 'parameter')))
    if kind == 'laughs':
        depth = draw(st.integers(1, 12))
        width = draw(st.integers(2, 16))
        lines = ['<!ENTITY e0 "9">']
        for level in range(1, depth + 1):
            lines.append('<!ENTITY e%d "%s">' % (
                level, ('&e%d;' % (level - 1)) * width))
        return ('<!DOCTYPE capabilities [%s]>' % ''.join(lines),
                '&e%d;' % depth)
    if kind == 'external':
        return ('<!DOCTYPE capabilities [<!ENTITY ext SYSTEM '
                '"file:///etc/passwd">]>', '&ext;')
    if kind == 'parameter':
        return ('<!DOCTYPE capabilities [<!ENTITY % p SYSTEM '
                '"file:///etc/passwd"> %p;]>', '1')
    return '', ''


def _hostile_value(draw: st.DrawFn, entity: str) -> str:
    """An attribute or text value gone wrong: a hostile number or an
    entity reference.
    """
    if entity and draw(st.booleans()):
        return entity
    return draw(_numbers).replace('"', '')


@st.composite
def capabilities_documents(draw: st.DrawFn) -> str:
    """Capabilities XML that is right, or almost: hostile numbers, cells
    and CPUs listed twice, entities, deep nesting, missing pieces.

    A third of the documents are valid, so that what parses is planned on;
    the others carry one defect or many.
    """
    prolog, entity = draw(entity_prolog())
    defects = draw(st.sampled_from((0, 1, 1, 3)))
    # Where the defects go: indices into the values written below.
    broken = set(draw(st.lists(st.integers(0, 40), min_size=defects,
                               max_size=defects)))
    counter = iter(range(10 ** 6))

    def value(valid: int) -> str:
        if next(counter) in broken:
            return _hostile_value(draw, entity)
        return str(valid)

    cells = []
    cpu = 0
    ncells = draw(st.integers(1, 3))
    for cell_id in range(ncells):
        cpus = []
        threads = draw(st.sampled_from((1, 2)))
        for core in range(draw(st.integers(1, 3))):
            first = cpu
            for _thread in range(threads):
                siblings = '%d-%d' % (first, first + threads - 1)
                if next(counter) in broken:
                    siblings = draw(any_cpu_spec).replace('"', '').replace(
                        '&', '').replace('<', '')
                cpus.append('<cpu id="%s" socket_id="%s" siblings="%s"/>' % (
                    value(cpu), value(cell_id), siblings))
                cpu += 1
        pages = ('<pages unit="KiB" size="%s">%s</pages>' % (
            value(4), value(262144)) if draw(st.booleans()) else '')
        cells.append('<cell id="%s"><memory unit="KiB">%s</memory>%s<cpus>'
                     '%s</cpus></cell>' % (value(cell_id), value(1048576),
                                           pages, ''.join(cpus)))
    if defects and draw(st.booleans()):
        # A cell listed twice (same id, same CPUs).
        cells.append(cells[-1])
    body = '<cells>%s</cells>' % ''.join(cells)
    depth = draw(st.sampled_from((0,) * 6 + (10, 255, 300, 5000)))
    body = '<x>' * depth + body + '</x>' * depth
    if not (defects and draw(st.booleans())):
        body = '<topology>%s</topology>' % body
    return prolog + '<capabilities><host>%s</host></capabilities>' % body


def _config(example: str) -> st.SearchStrategy[str]:
    """A ``[compute]`` CPU set: mostly unset or plausible."""
    return st.one_of(st.just(''), st.just(''), st.just(''), st.just(example),
                     any_cpu_spec)


any_caps = st.one_of(
    capabilities_documents(),
    capabilities_documents().map(
        lambda text: text.encode('utf-8')),
    st.binary(
        max_size=500),
    st.text(
        max_size=500),
    st.sampled_from(
        (b'',
         '',
         None,
         42,
         b'\xff\xfe<\x00c',
         '<a>\ud800</a>',
         '<?xml version="1.0" encoding="bogus"?><a/>')))


# -- the properties ----------------------------------------------------------


class TestParseRequest(base.TestCase):

    @FUZZ
    @hypothesis.given(_amounts, _amounts, extra_specs, image_props)
    def test_parses_or_says_why(self, vcpus: Any, memory_mb: Any,
                                specs: dict[str, str],
                                props: dict[str, Any] | None) -> None:
        STATS['parse_request examples'] += 1
        with hard_time_bound():
            try:
                request = cpu_request.parse_request(vcpus, memory_mb, specs,
                                                    props)
            except exception.EmulatorThreadsException as exc:
                message = assert_one_line(self, exc)
                key = getattr(exc, 'kwargs', {}).get('key')
                if key is not None:
                    self.assertIn(str(key), message)
                STATS['parse_request rejected'] += 1
                return
            # What parses is usable downstream.
            self.assertLessEqual(request.dedicated_cpus,
                                 frozenset(range(request.vcpus)))
            self.assertLessEqual(request.realtime_cpus,
                                 frozenset(range(request.vcpus)))
            overhead.placement_request(request)
            guest_topology.instance_topology_from_request(request)
            STATS['parse_request accepted'] += 1


class TestParseCPUSpec(base.TestCase):

    @FUZZ
    @hypothesis.given(any_cpu_spec | st.sampled_from(
        (None, b'0-3', 3, ['0'], 1.5)))
    def test_parses_or_says_why(self, spec: Any) -> None:
        STATS['parse_cpu_spec examples'] += 1
        with hard_time_bound():
            try:
                cpus = cpuset.parse_cpu_spec(spec, key='test_key')
            except exception.InvalidCPUSpec as exc:
                message = assert_one_line(self, exc)
                self.assertIn('test_key=', message)
                self.assertIn(str(cpuset.MAX_CPU_ID), message)
                STATS['parse_cpu_spec rejected'] += 1
                return
        self.assertIsInstance(cpus, frozenset)
        self.assertTrue(all(isinstance(cpu, int) and
                            0 <= cpu <= cpuset.MAX_CPU_ID for cpu in cpus))
        # What we accept, Nova accepts, as the same set (Nova's parser is
        # only run on input ours found bounded).
        self.assertEqual(set(cpus), nova_hardware.parse_cpu_spec(spec))
        # And it formats back to a spec that parses to the same set.
        self.assertEqual(cpus, cpuset.parse_cpu_spec(
            cpuset.format_cpu_spec(cpus)))
        STATS['parse_cpu_spec accepted'] += 1


class TestHostTopologyFromCaps(base.TestCase):

    @FUZZ
    @hypothesis.given(any_caps, _config('1-3'), _config('0'), _config('2'))
    def test_parses_or_says_why(self, xml: Any, dedicated: str,
                                shared: str, pinned: str) -> None:
        STATS['host_topology_from_caps examples'] += 1
        with hard_time_bound():
            try:
                host = capabilities.host_topology_from_caps(
                    xml, dedicated, shared,
                    pinned)
            except exception.EmulatorThreadsException as exc:
                assert_one_line(self, exc)
                STATS['host_topology_from_caps rejected'] += 1
                return
            self.check_usable(host)
        STATS['host_topology_from_caps accepted'] += 1

    def test_valid_hosts_parse(self) -> None:
        # The fuzzer's near-misses are near a host that parses.
        host = capabilities.host_topology_from_caps(
            cases.caps_xml(2, 2, 2, True, [1024, 1024], [[256, 4, 0]] * 2),
            '1-7', '0', '2')
        self.check_usable(host)

    def check_usable(self, host: topology.HostTopology) -> None:
        """No CPU in two cells, no cell twice, and the engine can plan."""
        seen: set[int] = set()
        for cell in host.cells:
            cpus = set(cell.cpuset) | set(cell.pcpuset)
            self.assertFalse(cpus & seen, 'a CPU in two cells')
            seen |= cpus
            self.assertLessEqual(set(cell.pinned_cpus), set(cell.pcpuset))
            self.assertTrue(all(size.size_kb > 0 for size in cell.mempages))
        self.assertEqual(len(host.cells), len({c.id for c in host.cells}))
        self.assertLessEqual(max(seen, default=0), cpuset.MAX_CPU_ID)
        for specs in ({'hw:cpu_policy': 'dedicated',
                       'hw:cpu_emulator_threads': 'isolate'},
                      {'hw:numa_nodes': '1', 'hw:mem_page_size': 'small'}):
            inst = guest_topology.instance_topology_from_flavor(1, 1, specs)
            self.assertIsNotNone(inst)
            fitted = hardware.fit_instance_to_host(host, inst)
            if fitted is None:
                self.assertTrue(hardware.explain_no_fit(host, inst))
                continue
            claimed = claims.numa_usage_from_instance(host, fitted)
            claims.numa_usage_from_instance(claimed, fitted, free=True)
            STATS['host_topology_from_caps planned'] += 1


def _traced(call: Any, *args: Any) -> tuple[Any, int]:
    """``call(*args)`` with tracemalloc on: its result, and the peak of
    memory allocated meanwhile, in bytes.
    """
    tracemalloc.start()
    try:
        result = call(*args)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@ddt.ddt
class TestMemoryBound(base.TestCase):
    """Huge ranges are refused before any set is built."""

    @ddt.named_data(['past the largest id', '0-99999999'],
                    ['5,000 digits', '0-' + '9' * 5000],
                    ['one past the largest id', '0-8192'],
                    ['excluding 2**32 ids', '^0-4294967295'],
                    ['2,000 ranges, then too large',
                     '0-3,' * 2000 + '0-99999999'])
    def test_huge_ranges_cost_nothing(self, spec: str) -> None:
        _exc, peak = _traced(self.assertRaises, exception.InvalidCPUSpec,
                             cpuset.parse_cpu_spec, spec)
        self.assertLess(peak, 256 * 1024, spec[:20])

    def test_the_largest_range_allowed(self) -> None:
        cpus, peak = _traced(cpuset.parse_cpu_spec,
                             '0-%d' % cpuset.MAX_CPU_ID)
        self.assertEqual(cpuset.MAX_CPU_ID + 1, len(cpus))
        # 8,192 ints: well under a few MiB.
        self.assertLess(peak, 4 * 1024 * 1024)

    def test_billion_laughs_is_not_expanded(self) -> None:
        laughs = ''.join('<!ENTITY e%d "%s">' % (
            level, ('&e%d;' % (level - 1)) * 10 if level else 'lol')
            for level in range(10))
        xml = ('<!DOCTYPE capabilities [%s]><capabilities><host><topology>'
               '<cells><cell id="0"><memory>&e9;</memory><cpus><cpu id="0"/>'
               '</cpus></cell></cells></topology></host></capabilities>'
               % laughs)
        _exc, peak = _traced(self.assertRaises,
                             exception.InvalidHostCapabilities,
                             capabilities.host_topology_from_caps, xml)
        self.assertLess(peak, 4 * 1024 * 1024)


_CELL = ('<cell id="0"><memory>1048576</memory><cpus><cpu id="0"/>'
         '<cpu id="1"/></cpus></cell>')


@ddt.ddt
class TestCommandLine(base.TestCase):
    """Hostile input through ``nova-emulator-threads plan``."""

    def assertRefusedInOneLine(self, argv: tuple[str, ...],
                               fragments: tuple[str, ...]) -> None:
        status, stdout, stderr = command.main('plan', *argv)
        self.assertEqual(2, status, stderr)
        self.assertEqual('', stdout)
        self.assertEqual(1, len(stderr.splitlines()), stderr)
        self.assertTrue(stderr.startswith('nova-emulator-threads plan: '),
                        stderr)
        self.assertNotIn('Traceback', stderr)
        self.assertNotIn(PASSWD_MARKER, stderr)
        for fragment in fragments:
            self.assertIn(fragment, stderr)

    @ddt.named_data(
        ['huge range', ('--cpu-dedicated-set', '0-99999999'),
         ('cpu_dedicated_set', '99999999', '8191')],
        ['negative id', ('--cpu-shared-set=-1',), ('cpu_shared_set', "'-1'")],
        ['unicode digits', ('--pinned', '\u0661-\u0663'),
         ('pinned', '\u0661-\u0663')],
        ['too many vCPUs', ('--vcpus', '99999999999'),
         ('vcpus', '99999999999')],
        ['endless number', ('--extra-spec', 'hw:numa_nodes=' + '9' * 5000),
         ('hw:numa_nodes', 'at most 20 digits')],
        ['key twice', ('--extra-spec', 'hw:cpu_policy=dedicated',
                       '--extra-spec', 'hw:cpu_policy=shared'),
         ('hw:cpu_policy', 'twice')],
    )
    def test_bad_option_is_exit_2_and_one_line(
            self, argv: tuple[str, ...], fragments: tuple[str, ...]) -> None:
        self.assertRefusedInOneLine(argv, fragments)

    # The host file's content; what the line says ({path}: the file).
    @ddt.named_data(
        ['billion laughs', ''.join(
            ['<!DOCTYPE capabilities [<!ENTITY e0 "9">'] +
            ['<!ENTITY e%d "%s">' % (n, ('&e%d;' % (n - 1)) * 10)
             for n in range(1, 10)] +
            [']><capabilities><host><topology><cells><cell id="0">'
             '<memory>&e9;</memory><cpus><cpu id="0"/></cpus></cell>'
             '</cells></topology></host></capabilities>']).encode(),
         ('{path}', 'XML')],
        ['external entity', (
            b'<!DOCTYPE capabilities [<!ENTITY ext SYSTEM '
            b'"file:///etc/passwd">]><capabilities><host><topology>'
            b'<cells><cell id="&ext;"><cpus><cpu id="0"/></cpus></cell>'
            b'</cells></topology></host></capabilities>'),
         ('{path}', 'external entity')],
        ['deep nesting', b'<capabilities>' + b'<x>' * 5000 + b'</x>' * 5000 +
         b'</capabilities>', ('{path}', 'depth')],
        ['CPU in two cells', (
            '<capabilities><host><topology><cells>%s%s</cells>'
            '</topology></host></capabilities>'
            % (_CELL, _CELL.replace('id="0">', 'id="1">'))).encode(),
         ('CPU id 0 is listed twice',)],
        ['binary', bytes(range(256)) * 4,
         ('{path}', 'not well-formed XML')],
    )
    def test_hostile_host_is_exit_2_and_one_line(
            self, content: bytes, fragments: tuple[str, ...]) -> None:
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'host.xml')
        with open(path, 'wb') as f:
            f.write(content)
        self.assertRefusedInOneLine(
            ('--host', path),
            tuple(fragment.format(path=path) for fragment in fragments))
