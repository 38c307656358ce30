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

"""Differential tests: our parser and placement figures against Nova 34's.

For a few hundred generated flavors (and images), valid and invalid, we
run what Nova runs when a server is created: the extra-spec validators
(``nova.api.validation.extra_specs``), ``ImageMeta.from_dict``,
``nova.virt.hardware.numa_get_constraints`` and
``nova.scheduler.utils.ResourceRequest.from_request_spec``. Our
``cpu_request.parse_request`` must accept and reject the same flavors, except
where we are deliberately stricter (``DELIBERATE_DIFFERENCES``, the one
list of them), and for accepted flavors derive the same topology and the
same CPU resources.
"""

import dataclasses
import random
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ddt
import fixtures
from oslo_utils import strutils

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import nova.conf  # noqa: F401  (registers the options Nova reads)
    from nova import objects
    from nova.api.validation.extra_specs import hw as nova_hw_specs
    from nova.api.validation.extra_specs import resources as nova_res_specs
    from nova.api.validation.extra_specs import traits as nova_trait_specs
    from nova.scheduler import utils as nova_scheduler_utils
    from nova.virt import hardware as nova_hardware
import os_resource_classes as orc

from nova_emulator_threads import cpu_request
from nova_emulator_threads import cpu_request_numa
from nova_emulator_threads import cpu_request_placement
from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads import overhead
from tests.unit import base

objects.register_all()

SEED = 20260234
CASES = 600

# Nova's own validators for the namespaces we read (loading them through
# stevedore would also load ours, which is not the reference).
_NOVA_VALIDATORS = (nova_hw_specs.register() + nova_res_specs.register() +
                    nova_trait_specs.register())
_VALIDATED_NAMESPACE = re.compile(r'(hw|resources\d*|trait\d*):.*')


@dataclasses.dataclass
class Case:
    vcpus: int
    memory_mb: int
    extra_specs: dict[str, str]
    #: Typed, as ImageMetaProps holds them (hw_numa_cpus a list of sets).
    image_props: dict[str, Any]


class NovaRejected(Exception):
    pass


@dataclasses.dataclass
class NovaResult:
    topology: Any  # objects.InstanceNUMATopology | None
    realtime: set[int] | None
    cpu_resources: dict[str, int]


# -- what Nova does ----------------------------------------------------------


def _nova_validate(name: str, value: str) -> None:
    for validator in _NOVA_VALIDATORS:
        if re.fullmatch(validator.name_regex, name):
            validator.validate(name, value)
            return
    if _VALIDATED_NAMESPACE.fullmatch(name):
        raise NovaRejected('unknown extra spec %s' % name)


def _nova_image_props(props: Mapping[str, Any]) -> dict[str, Any]:
    """Glance's flat form, which ``ImageMetaProps.from_dict`` reads."""
    flat: dict[str, Any] = {}
    for key, value in props.items():
        if key == cpu_request_numa.NUMA_CPUS_PROP:
            for node, cpus in enumerate(value):
                flat['%s.%d' % (key, node)] = cpuset.format_cpu_spec(cpus)
        elif key == cpu_request_numa.NUMA_MEM_PROP:
            for node, mem in enumerate(value):
                flat['%s.%d' % (key, node)] = str(mem)
        elif key == cpu_request_placement.TRAITS_REQUIRED_PROP:
            for trait in value:
                flat['trait:%s' % trait] = 'required'
        else:
            flat[key] = value
    return flat


def nova_parse(case: Case) -> NovaResult:
    """Run Nova on a case; raise NovaRejected if Nova refuses it."""
    specs = dict(case.extra_specs)
    # Nova knows only the alias; with both keys set they must agree (the
    # one rule of ours Nova cannot have).
    ours = specs.pop(cpu_request.EMULATOR_THREADS_KEY, None)
    if ours is not None:
        alias = specs.setdefault(cpu_request.EMULATOR_THREADS_ALIAS, ours)
        if alias != ours:
            raise NovaRejected('alias conflict')
    try:
        for name, value in specs.items():
            _nova_validate(name, value)
        flavor = objects.Flavor(
            name='f', vcpus=case.vcpus, memory_mb=case.memory_mb,
            root_gb=0, ephemeral_gb=0, swap=0, extra_specs=specs)
        image = objects.ImageMeta.from_dict(
            {'properties': _nova_image_props(case.image_props)})
        topology = nova_hardware.numa_get_constraints(flavor, image)
        realtime = nova_hardware.get_realtime_cpu_constraint(flavor, image)
        request = nova_scheduler_utils.ResourceRequest.from_request_spec(
            objects.RequestSpec(flavor=flavor, image=image, is_bfv=False))
    except Exception as exc:  # any refusal is a refusal
        raise NovaRejected('%s: %s' % (type(exc).__name__, exc)) from exc
    merged = request.merged_resources()
    cpu_resources = {rc: merged[rc] for rc in (orc.VCPU, orc.PCPU)
                     if merged.get(rc)}
    return NovaResult(topology, realtime, cpu_resources)


def nova_cells(topology: Any) -> list[tuple[Any, ...]] | None:
    if topology is None:
        return None
    return [(c.id, set(c.cpuset), set(c.pcpuset), c.memory, c.pagesize,
             c.cpu_policy, c.cpu_thread_policy) for c in topology.cells]


def our_cells(request: cpu_request.CPURequest) -> list[tuple[Any, ...]] | None:
    """The guest cells, built the way Nova builds them from the request."""
    if not request.needs_numa_topology:
        return None
    nodes = request.numa_nodes or 1
    if request.numa_cpus is None:
        assert request.numa_mem is None
        per_node = request.vcpus // nodes
        layout = [(set(range(n * per_node, (n + 1) * per_node)),
                   request.memory_mb // nodes) for n in range(nodes)]
    else:
        assert request.numa_mem is not None
        layout = [(set(cpus), mem)
                  for cpus, mem in zip(request.numa_cpus, request.numa_mem)]
    return [(node, cpus - request.dedicated_cpus,
             cpus & request.dedicated_cpus, mem, request.pagesize,
             request.cpu_policy, request.cpu_thread_policy)
            for node, (cpus, mem) in enumerate(layout)]


# -- where we deliberately differ --------------------------------------------


def _malformed_for_nova(mask: object) -> bool:
    try:
        nova_hardware.parse_cpu_spec(str(mask))
    except Exception:  # Nova's parser raises its own Invalid
        return True
    return False


def _emulator_policy(case: Case) -> str | None:
    return (case.extra_specs.get(cpu_request.EMULATOR_THREADS_KEY) or
            case.extra_specs.get(cpu_request.EMULATOR_THREADS_ALIAS))


def _share_unpinned(case: Case, nova: NovaResult) -> bool:
    pinned = nova.topology is not None and nova.topology.cells[0].cpu_policy \
        in ('dedicated', 'mixed')
    return _emulator_policy(case) == 'share' and not pinned


def _ignored_malformed_mask(case: Case, nova: NovaResult) -> bool:
    masks: list[object] = [
        v for k, v in case.extra_specs.items()
        if k == cpu_request.CPU_REALTIME_MASK_KEY or
        k.startswith(cpu_request_numa.NUMA_CPUS_KEY_PREFIX)]
    masks.append(case.image_props.get(cpu_request.CPU_REALTIME_MASK_PROP))
    return any(m is not None and _malformed_for_nova(m) for m in masks)


def _numa_key_gap(case: Case, nova: NovaResult) -> bool:
    for prefix in (cpu_request_numa.NUMA_CPUS_KEY_PREFIX,
                   cpu_request_numa.NUMA_MEM_KEY_PREFIX):
        nodes = {int(k[len(prefix):]) for k in case.extra_specs
                 if k.startswith(prefix)}
        if nodes and nodes != set(range(len(nodes))):
            return True
    return False


def _page_size_not_whole_kib(case: Case, nova: NovaResult) -> bool:
    for value in (case.extra_specs.get(cpu_request_numa.MEM_PAGE_SIZE_KEY),
                  case.image_props.get(cpu_request_numa.MEM_PAGE_SIZE_PROP)):
        if value is None or value in ('small', 'large', 'any'):
            continue
        try:
            size = (int(value) * 1024 if str(value).isdigit() else
                    strutils.string_to_bytes(value, return_int=True))
        except ValueError:
            continue
        if size <= 0 or size % 1024:
            return True
    return False


def _negative_resources(case: Case, nova: NovaResult) -> bool:
    return any(re.fullmatch(r'resources\d*:[VP]CPU', k) and
               v.lstrip('-').isdigit() and int(v) < 0
               for k, v in case.extra_specs.items())


def _trait_conflict(case: Case, nova: NovaResult) -> bool:
    found = {v for k, v in case.extra_specs.items()
             if re.fullmatch(r'trait\d*:HW_CPU_HYPERTHREADING', k)}
    return len(found) > 1


#: Every place where we reject what Nova accepts, and why. A case Nova
#: accepts and we reject must match one; nothing else may differ.
DELIBERATE_DIFFERENCES: dict[str, Callable[[Case, NovaResult], bool]] = {
    # The spec: the emulator threads policy requires pinned vCPUs. Nova
    # rejects only 'isolate' there
    # (cpu_request.check_emulator_threads_cpu_policy).
    'share without pinned vCPUs': _share_unpinned,
    # Nova parses some masks only when it uses them.
    'malformed mask Nova ignores': _ignored_malformed_mask,
    # Nova stops at the first missing hw:numa_cpus.N and ignores the rest.
    'hw:numa_cpus.N / hw:numa_mem.N with a gap': _numa_key_gap,
    # Nova truncates a fraction of a KiB, and takes 0 as "no page size".
    'page size not a positive whole number of KiB': _page_size_not_whole_kib,
    # Nova's API takes any integer; its scheduler then drops negative ones.
    'negative resource amount': _negative_resources,
    # Nova takes the first trait key it meets.
    'HW_CPU_HYPERTHREADING both required and forbidden': _trait_conflict,
}


# -- the generator -----------------------------------------------------------


class _Picker:
    """Random choices that are sometimes wrong: often in a "messy" case,
    rarely in a "tidy" one, so that both Nova's refusals and its accepted
    layouts are well covered.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.p_bad = 0.2 if rng.random() < 0.4 else 0.02

    def maybe(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, good: Sequence[Any], bad: Sequence[Any] = ()) -> Any:
        if bad and self.maybe(self.p_bad):
            return self.rng.choice(bad)
        return self.rng.choice(good)

    def mask(self, vcpus: int) -> str:
        good = ['0', '^0', '0-1', '1', '^%d' % (vcpus - 1), '0,2', '^1,^2']
        bad = ['0-%d' % (vcpus - 1), '^0-1', str(vcpus), '1-%d' % vcpus,
               '2-1', 'x', '']
        return str(self.pick(good, bad))


def _split(rng: random.Random, total: int, nodes: int) -> list[int]:
    """``total`` in ``nodes`` parts, usually even, sometimes not."""
    if nodes == 1:
        return [total]
    cuts = sorted(rng.sample(range(1, total), nodes - 1)) if (
        total > nodes and rng.random() < 0.3) else [
        total * n // nodes for n in range(1, nodes)]
    return [b - a for a, b in zip([0] + cuts, cuts + [total])]


def _numa_maps(p: _Picker, vcpus: int, memory_mb: int,
               nodes: int) -> tuple[list[set[int]], list[int]]:
    sizes = _split(p.rng, vcpus, nodes) if vcpus >= nodes else [1] * nodes
    order = list(range(vcpus))
    if p.maybe(0.3):
        p.rng.shuffle(order)
    cpus, start = [], 0
    for size in sizes:
        cpus.append(set(order[start:start + size]))
        start += size
    mem = _split(p.rng, memory_mb, nodes)
    if p.maybe(p.p_bad):
        broken = p.pick(['range', 'duplicate', 'unassigned', 'memory'])
        if broken == 'range':
            cpus[0].add(vcpus)
        elif broken == 'duplicate' and nodes > 1 and cpus[0]:
            cpus[-1].add(min(cpus[0]))
        elif broken == 'unassigned':
            cpus[-1] -= {max(order)}
        else:
            mem[0] += 512
    return cpus, mem


def generate(rng: random.Random) -> Case:
    p = _Picker(rng)
    vcpus = p.pick([1, 2, 3, 4, 4, 6, 8])
    memory_mb = p.pick([512, 1024, 1536, 2048, 4096])
    specs: dict[str, str] = {}
    props: dict[str, Any] = {}

    base = p.pick(['dedicated', 'dedicated', 'mixed', 'mixed', 'shared',
                   'none', 'pcpu', 'vcpu'])
    if base in ('dedicated', 'mixed', 'shared'):
        specs[cpu_request.CPU_POLICY_KEY] = p.pick(
            [base], ['bogus', 'Dedicated', ''])
    elif base == 'pcpu':
        key = p.pick(['resources:PCPU', 'resources1:PCPU'])
        specs[key] = str(vcpus + p.pick([0, 1], [-1, 2, -vcpus - 1]))
    elif base == 'vcpu':
        specs['resources:VCPU'] = str(p.pick([vcpus, 0, 2], [-1]))
    if base == 'mixed' and p.maybe(0.8) or p.maybe(p.p_bad / 2):
        specs[cpu_request.CPU_DEDICATED_MASK_KEY] = p.mask(vcpus)

    if p.maybe(0.7 if base in ('dedicated', 'mixed', 'pcpu') else 0.2):
        value = p.pick(['share', 'isolate'], ['bogus', '', 'Isolate'])
        style = rng.random()
        if style < 0.45:
            specs[cpu_request.EMULATOR_THREADS_KEY] = value
        elif style < 0.8:
            specs[cpu_request.EMULATOR_THREADS_ALIAS] = value
        else:
            specs[cpu_request.EMULATOR_THREADS_KEY] = value
            specs[cpu_request.EMULATOR_THREADS_ALIAS] = p.pick(
                [value], ['share', 'isolate'])

    if p.maybe(0.25):
        specs[cpu_request.CPU_THREAD_POLICY_KEY] = p.pick(
            ['prefer', 'isolate', 'require'], ['bogus'])
    if p.maybe(0.1):
        key = p.pick(['trait:HW_CPU_HYPERTHREADING',
                      'trait1:HW_CPU_HYPERTHREADING'])
        specs[key] = p.pick(['required', 'forbidden'], ['bogus'])
        if p.maybe(0.2):
            specs['trait2:HW_CPU_HYPERTHREADING'] = p.pick(
                ['required', 'forbidden'])

    if p.maybe(0.25):
        specs[cpu_request.CPU_REALTIME_KEY] = p.pick(
            ['true', 'yes', 'True', '1', 'false', 'no'], ['maybe'])
        if p.maybe(0.7):
            specs[cpu_request.CPU_REALTIME_MASK_KEY] = p.mask(vcpus)
    elif p.maybe(0.05):
        specs[cpu_request.CPU_REALTIME_MASK_KEY] = p.mask(vcpus)

    if p.maybe(0.3):
        nodes = p.pick([1, 2, 2, 3, 4])
        specs[cpu_request_numa.NUMA_NODES_KEY] = p.pick(
            [str(nodes)], ['0', 'two'])
        if p.maybe(0.4):
            cpus, mem = _numa_maps(p, vcpus, memory_mb, nodes)
            for node, (c, m) in enumerate(zip(cpus, mem)):
                cpus_key = cpu_request_numa.NUMA_CPUS_KEY_PREFIX + str(node)
                mem_key = cpu_request_numa.NUMA_MEM_KEY_PREFIX + str(node)
                specs[cpus_key] = cpuset.format_cpu_spec(c)
                specs[mem_key] = str(m)
            if p.maybe(p.p_bad):
                if p.maybe(0.5):
                    del specs['%s%d' %
                              (cpu_request_numa.NUMA_MEM_KEY_PREFIX, 0)]
                else:
                    specs['%s%d' % (cpu_request_numa.NUMA_CPUS_KEY_PREFIX,
                                    nodes + 1)] = '0'
    if p.maybe(0.2):
        specs[cpu_request_numa.MEM_PAGE_SIZE_KEY] = p.pick(
            ['small', 'large', 'any', '2048', '2MiB', '1GB', '4'],
            ['huge', '0', '2M', '1000b'])

    # The image.
    if p.maybe(0.1):
        props[cpu_request.CPU_POLICY_PROP] = p.pick(
            ['dedicated', 'mixed', 'shared'])
    if p.maybe(0.1):
        props[cpu_request.CPU_THREAD_POLICY_PROP] = p.pick(
            ['prefer', 'isolate', 'require'])
    if p.maybe(0.08):
        props[cpu_request.CPU_REALTIME_MASK_PROP] = p.pick(
            ['^0', '0', '^0-1', '1-2'], ['x'])
    if p.maybe(0.1):
        props[cpu_request_numa.MEM_PAGE_SIZE_PROP] = p.pick(
            ['small', 'large', '2048', '1GiB'], ['huge'])
    if p.maybe(0.12):
        image_nodes = p.pick([1, 2])
        props[cpu_request_numa.NUMA_NODES_PROP] = image_nodes
        if p.maybe(0.5):
            cpus, mem = _numa_maps(p, vcpus, memory_mb, image_nodes)
            if all(cpus):
                props[cpu_request_numa.NUMA_CPUS_PROP] = cpus
                props[cpu_request_numa.NUMA_MEM_PROP] = mem
    if p.maybe(0.05):
        props[cpu_request_placement.TRAITS_REQUIRED_PROP] = [
            cpu_request_placement.HYPERTHREADING_TRAIT]
    return Case(vcpus, memory_mb, specs, props)


# -- the tests ---------------------------------------------------------------


@ddt.ddt
class TestNovaDifferential(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        # Nova's scheduler warns about the negative amounts we generate.
        self.useFixture(fixtures.FakeLogger('nova'))
        # nova_patch replaces these two in the process when our API,
        # scheduler or driver module is imported; the reference is Nova's.
        for owner, path in (
                (nova_hardware, 'nova.virt.hardware.'
                 'get_emulator_thread_policy_constraint'),
                (nova_scheduler_utils.ResourceRequest, 'nova.scheduler.utils.'
                 'ResourceRequest._translate_pinning_policies')):
            current = getattr(owner, path.rsplit('.', 1)[1])
            original = getattr(current, '__wrapped__', None)
            if original is not None:
                self.useFixture(fixtures.MonkeyPatch(path, original))

    def _compare(self, case: Case) -> str:
        """Compare one case; return 'accepted', 'rejected' or a reason."""
        try:
            ours: cpu_request.CPURequest | None = cpu_request.parse_request(
                case.vcpus, case.memory_mb, case.extra_specs,
                case.image_props)
            our_error = None
        except exception.Invalid as exc:
            ours, our_error = None, exc
        try:
            nova: NovaResult | None = nova_parse(case)
            nova_error = None
        except NovaRejected as exc:
            nova, nova_error = None, exc

        if nova is None:
            self.assertIsNone(
                ours, 'Nova rejects (%s) but we accept %r' % (nova_error,
                                                              case))
            return 'rejected'
        if ours is None:
            reasons = [name for name, applies in
                       DELIBERATE_DIFFERENCES.items() if applies(case, nova)]
            self.assertTrue(
                reasons, 'we reject (%s) but Nova accepts %r'
                % (our_error, case))
            return reasons[0]

        self.assertEqual(nova_cells(nova.topology), our_cells(ours),
                         repr(case))
        if nova.topology is not None:
            self.assertEqual(nova.topology.emulator_threads_policy,
                             ours.emulator_threads_policy, repr(case))
        self.assertEqual(nova.realtime or set(), set(ours.realtime_cpus),
                         repr(case))
        self.assertEqual(nova.cpu_resources,
                         overhead.placement_request(ours), repr(case))
        return 'accepted'

    def test_generated_flavors(self) -> None:
        rng = random.Random(SEED)
        outcomes: dict[str, int] = {}
        # A loop, not cases: generated flavors, compared with Nova.
        for _ in range(CASES):
            outcome = self._compare(generate(rng))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        # The generator must keep exercising both sides (and not decay
        # into cases that are all rejected).
        self.assertGreater(outcomes.get('accepted', 0), CASES // 5,
                           outcomes)
        self.assertGreater(outcomes.get('rejected', 0), CASES // 5,
                           outcomes)

    # Chosen flavors, against Nova's scheduler (ResourceRequest) and
    # numa_get_constraints, one by one so that a failure names the case.
    PLACEMENT_CASES: list[dict[str, str]] = [
        {'hw:cpu_policy': 'dedicated'},
        {'hw:cpu_policy': 'dedicated',
         'hw:emulator_threads_policy': 'isolate'},
        {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'},
        {'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '^0',
         'hw:cpu_emulator_threads': 'isolate'},
        {'hw:cpu_policy': 'mixed', 'hw:cpu_realtime': 'yes',
         'hw:cpu_realtime_mask': '^0-1', 'hw:cpu_emulator_threads': 'isolate'},
        {'hw:cpu_policy': 'mixed', 'hw:cpu_realtime': 'yes',
         'hw:cpu_emulator_threads': 'share'},
        {'resources:PCPU': '5', 'hw:cpu_emulator_threads': 'isolate'},
        {'resources1:PCPU': '2', 'resources2:PCPU': '3',
         'hw:emulator_threads_policy': 'isolate'},
        {'resources:VCPU': '2'},
        {'resources:VCPU': '0'},
        {'resources:PCPU': '0'},
        {'resources:VCPU': '0', 'hw:cpu_policy': 'dedicated'},
        {'hw:cpu_policy': 'shared'},
        {},
    ]

    @ddt.data(*PLACEMENT_CASES)
    def test_placement_cases(self, specs: dict[str, str]) -> None:
        self.assertEqual('accepted', self._compare(Case(4, 2048, specs, {})),
                         repr(specs))

    def test_named_group_suffix(self) -> None:
        # Nova's numa_get_constraints counts resources<N>:PCPU with a
        # numeric suffix only, its scheduler any placement suffix: with
        # 'resources_pinned:PCPU' Nova claims 4 PCPU for a guest it does
        # not pin. We side with the scheduler: the guest is pinned.
        case = Case(4, 2048, {'resources_pinned:PCPU': '4'}, {})
        nova = nova_parse(case)
        self.assertIsNone(nova.topology)
        self.assertEqual({'PCPU': 4}, nova.cpu_resources)
        ours = cpu_request.parse_request(4, 2048, case.extra_specs)
        self.assertEqual('dedicated', ours.cpu_policy)
        self.assertEqual({'PCPU': 4}, overhead.placement_request(ours))

    # Every entry of DELIBERATE_DIFFERENCES: an example that Nova accepts,
    # we reject, and that the entry (and only it) explains.
    DIFFERENCE_EXAMPLES = {
        'share without pinned vCPUs': Case(
            4, 2048, {'hw:emulator_threads_policy': 'share'}, {}),
        'malformed mask Nova ignores': Case(
            4, 2048, {'hw:cpu_realtime_mask': '3-1'}, {}),
        'hw:numa_cpus.N / hw:numa_mem.N with a gap': Case(
            4, 2048, {'hw:cpu_policy': 'dedicated',
                      'hw:numa_cpus.0': '0-3', 'hw:numa_mem.0': '2048',
                      'hw:numa_cpus.2': '0'}, {}),
        'page size not a positive whole number of KiB': Case(
            4, 2048, {'hw:mem_page_size': '0'}, {}),
        'negative resource amount': Case(
            4, 2048, {'resources1:VCPU': '-1'}, {}),
        'HW_CPU_HYPERTHREADING both required and forbidden': Case(
            4, 2048, {'hw:cpu_policy': 'dedicated',
                      'trait1:HW_CPU_HYPERTHREADING': 'required',
                      'trait2:HW_CPU_HYPERTHREADING': 'forbidden'}, {}),
    }

    def test_each_deliberate_difference_has_an_example(self) -> None:
        self.assertEqual(set(DELIBERATE_DIFFERENCES),
                         set(self.DIFFERENCE_EXAMPLES))

    # (test name, the entry's name, its example)
    @ddt.named_data(*[(name, name, case)
                      for name, case in DIFFERENCE_EXAMPLES.items()])
    def test_each_deliberate_difference_is_real(self, name: str,
                                                case: Case) -> None:
        self.assertEqual(name, self._compare(case), repr(case))
        others = [other for other, applies in DELIBERATE_DIFFERENCES.items()
                  if other != name and applies(case, nova_parse(case))]
        self.assertEqual([], others, name)
