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

"""Flavor extra specs and image properties -> a validated CPU request.

``parse_request`` derives what ``nova.virt.hardware.numa_get_constraints``
derives (CPU policy, CPU thread policy, emulator threads policy, dedicated
and realtime vCPUs, guest NUMA layout, page size) and rejects what Nova
rejects there and in its extra-spec validators, with one sentence that
names the key, the value and what is allowed.

Where we are deliberately stricter than Nova the code says so in a
``NOTE``:

* an emulator threads policy (``share`` as well as ``isolate``) needs
  pinned vCPUs (``check_emulator_threads_cpu_policy``, the one place that
  decides it);
* malformed CPU masks are rejected even where Nova ignores the key
  (``hw:cpu_realtime_mask`` without ``hw:cpu_realtime``, or a
  ``hw:numa_cpus.N`` of a guest without a NUMA topology);
* ``resources<group>:VCPU|PCPU`` and ``trait<group>:HW_CPU_HYPERTHREADING``
  count with any placement group suffix, as Nova's scheduler counts them
  (Nova's ``numa_get_constraints`` counts numeric suffixes only, so there
  the scheduler and the NUMA claim can disagree);
* keys Nova silently drops are errors: ``hw:numa_cpus.N`` /
  ``hw:numa_mem.N`` after a gap, ``HW_CPU_HYPERTHREADING`` trait keys that
  disagree;
* amounts that make no sense are errors: negative resource amounts, guest
  NUMA nodes without memory, page sizes that are not a positive whole
  number of KiB, more than ``MAX_VCPUS`` vCPUs.

Pure: no Nova import. The rules are Nova's, and a differential test keeps
them in step with Nova.
"""

import dataclasses
from collections.abc import Mapping

from nova_emulator_threads import cpu_request_numa
from nova_emulator_threads import cpu_request_placement
from nova_emulator_threads import cpu_request_values as values
from nova_emulator_threads import cpuset
from nova_emulator_threads.objects import fields

#: Our flavor extra spec, and Nova's name for it (accepted as an alias).
EMULATOR_THREADS_KEY = 'hw:cpu_emulator_threads'
EMULATOR_THREADS_ALIAS = 'hw:emulator_threads_policy'

#: Flavor extra specs (``hw:``) and the image properties (``hw_``) that
#: may stand in for them, as Nova names them. The NUMA and page size keys
#: are in ``cpu_request_numa``.
CPU_POLICY_KEY = 'hw:cpu_policy'
CPU_POLICY_PROP = 'hw_cpu_policy'
CPU_THREAD_POLICY_KEY = 'hw:cpu_thread_policy'
CPU_THREAD_POLICY_PROP = 'hw_cpu_thread_policy'
CPU_DEDICATED_MASK_KEY = 'hw:cpu_dedicated_mask'
CPU_REALTIME_KEY = 'hw:cpu_realtime'
CPU_REALTIME_MASK_KEY = 'hw:cpu_realtime_mask'
CPU_REALTIME_MASK_PROP = 'hw_cpu_realtime_mask'
#: ``resources:`` and ``trait:`` keys are in ``cpu_request_placement``.

#: The largest flavor we accept: one vCPU per CPU id we can name.
MAX_VCPUS = cpuset.MAX_CPU_ID + 1

#: How many extra dedicated pCPUs ``isolate`` costs (the spec: exactly
#: one). The explicit ``resources:PCPU`` check here,
#: ``overhead.estimate_instance_overhead`` (the placement claim) and the
#: host NUMA claim all use this one number.
EMULATOR_THREADS_ISOLATE_PCPUS = 1

_DEDICATED = fields.CPUAllocationPolicy.DEDICATED
_MIXED = fields.CPUAllocationPolicy.MIXED
_SHARED = fields.CPUAllocationPolicy.SHARED
_ISOLATE = fields.CPUEmulatorThreadsPolicy.ISOLATE
_PINNED = ('needs pinned vCPUs: %s=%s or %s'
           % (CPU_POLICY_KEY, _DEDICATED, _MIXED))


@dataclasses.dataclass(frozen=True, slots=True)
class CPURequest:
    """What a flavor (plus image) asks of the host's CPUs and memory.

    Mirrors what ``nova.virt.hardware.numa_get_constraints`` derives, as
    plain values.
    """

    vcpus: int
    memory_mb: int
    #: None (unset), 'shared', 'dedicated' or 'mixed'; an explicit
    #: ``resources:PCPU`` makes it 'dedicated', ``resources:VCPU`` 'shared'.
    cpu_policy: str | None = None
    #: None, 'prefer', 'isolate' or 'require' (also from the
    #: HW_CPU_HYPERTHREADING trait, as Nova does).
    cpu_thread_policy: str | None = None
    #: None, 'share' or 'isolate'.
    emulator_threads_policy: str | None = None
    #: vCPUs that are pinned: all under 'dedicated', the dedicated or
    #: realtime mask under 'mixed', none otherwise.
    dedicated_cpus: frozenset[int] = frozenset()
    #: vCPUs with a realtime scheduler (hw:cpu_realtime + mask).
    realtime_cpus: frozenset[int] = frozenset()
    #: hw:numa_nodes, or None.
    numa_nodes: int | None = None
    #: hw:numa_cpus.N per guest node, or None. Set (with ``numa_mem``)
    #: only for a guest with a NUMA topology and a manual layout.
    numa_cpus: tuple[frozenset[int], ...] | None = None
    #: hw:numa_mem.N (MiB) per guest node, or None.
    numa_mem: tuple[int, ...] | None = None
    #: hw:mem_page_size: KiB, or MEMPAGES_SMALL/LARGE/ANY, or None.
    pagesize: int | None = None
    #: The sum of explicit ``resources[<group>]:VCPU`` amounts, or None
    #: when no such key is set. Nova asks placement for this amount rather
    #: than the flavor's vCPUs (0 asks for none, as Ironic flavors do).
    vcpu_resources: int | None = None
    #: The sum of explicit ``resources[<group>]:PCPU`` amounts, or None.
    #: When not zero it is the vCPUs plus the emulator threads overhead.
    pcpu_resources: int | None = None

    @property
    def needs_numa_topology(self) -> bool:
        """Whether Nova gives this guest a NUMA topology (and pins it)."""
        return bool(self.numa_nodes or self.pagesize or self.cpu_policy in (
            fields.CPUAllocationPolicy.DEDICATED,
            fields.CPUAllocationPolicy.MIXED))


# -- emulator threads --------------------------------------------------------


def _emulator_threads(
    extra_specs: Mapping[str, object],
) -> tuple[str | None, str]:
    """The emulator threads policy and the key it came from."""
    allowed = fields.CPUEmulatorThreadsPolicy.ALL
    ours = extra_specs.get(EMULATOR_THREADS_KEY)
    alias = extra_specs.get(EMULATOR_THREADS_ALIAS)
    if ours is not None:
        ours = values.parse_enum(EMULATOR_THREADS_KEY, ours, allowed)
    if alias is not None:
        alias = values.parse_enum(EMULATOR_THREADS_ALIAS, alias, allowed)
    if ours is not None and alias is not None and ours != alias:
        raise values.conflict(
            EMULATOR_THREADS_KEY, ours, EMULATOR_THREADS_ALIAS, alias,
            '%s is an alias of %s, so set one of them, or both to the same '
            'value' % (EMULATOR_THREADS_ALIAS, EMULATOR_THREADS_KEY))
    if ours is None and alias is not None:
        return alias, EMULATOR_THREADS_ALIAS
    return ours, EMULATOR_THREADS_KEY


def emulator_threads_policy(
    extra_specs: Mapping[str, object] | None,
) -> str | None:
    """The emulator threads policy a flavor asks for, or None.

    ``hw:cpu_emulator_threads`` and its alias ``hw:emulator_threads_policy``
    are both read; equal values are fine, different ones are rejected.
    This is the drop-in for Nova's
    ``nova.virt.hardware.get_emulator_thread_policy_constraint(flavor)``,
    which also reads the flavor's extra specs only and does not look at
    the CPU policy (that is ``check_emulator_threads_cpu_policy``).

    :raises: InvalidExtraSpec for a value other than 'share' or 'isolate'
    :raises: ConflictingExtraSpecs when the two keys disagree
    """
    return _emulator_threads(extra_specs or {})[0]


def check_emulator_threads_cpu_policy(
    emulator_policy: str | None,
    cpu_policy: str | None,
    emulator_key: str = EMULATOR_THREADS_KEY,
    cpu_policy_key: str = CPU_POLICY_KEY,
    cpu_policy_value: object = None,
) -> None:
    """Reject an emulator threads policy on a guest with unpinned vCPUs.

    NOTE: deliberately stricter than Nova, which rejects only ``isolate``
    here (``BadRequirementEmulatorThreadsPolicy``) and lets ``share``
    through, where it does nothing. The spec makes either policy require
    ``hw:cpu_policy=dedicated`` (or ``mixed``), and a setting that is
    silently ignored is a mistake the user wants to hear about.

    :param cpu_policy_value: the value as written under
        ``cpu_policy_key``, for the message (defaults to ``cpu_policy``)
    :raises: InvalidExtraSpec or ConflictingExtraSpecs
    """
    if emulator_policy is None or cpu_policy in fields.PINNED_CPU_POLICIES:
        return
    allowed = 'an emulator threads policy ' + _PINNED
    if cpu_policy is None:
        raise values.invalid(emulator_key, emulator_policy, allowed)
    raise values.conflict(
        emulator_key, emulator_policy, cpu_policy_key,
        cpu_policy if cpu_policy_value is None else cpu_policy_value,
        allowed)


# -- CPU policies ------------------------------------------------------------


def _cpu_policy(
    specs: Mapping[str, object], props: Mapping[str, object],
) -> tuple[str | None, str]:
    """Nova's ``get_cpu_policy_constraint``: the policy and its key."""
    allowed = fields.CPUAllocationPolicy.ALL
    flavor = specs.get(CPU_POLICY_KEY)
    image = values.image_value(props, CPU_POLICY_PROP)
    if flavor is not None:
        flavor = values.parse_enum(CPU_POLICY_KEY, flavor, allowed)
    if image is not None:
        image = values.parse_enum(CPU_POLICY_PROP, image, allowed)
    if flavor is None:
        return image, CPU_POLICY_PROP
    # The flavor wins, but the image may not ask for more pinning.
    forbidden = {_MIXED: (_DEDICATED,), _SHARED: (_MIXED, _DEDICATED)}
    if image in forbidden.get(flavor, ()):
        raise values.conflict(
            CPU_POLICY_PROP, image, CPU_POLICY_KEY, flavor,
            'an image may not ask for more CPU pinning than its flavor')
    return flavor, CPU_POLICY_KEY


def _cpu_thread_policy(
    specs: Mapping[str, object], props: Mapping[str, object],
) -> tuple[str | None, str]:
    """Nova's ``get_cpu_thread_policy_constraint``: the policy, its key."""
    allowed = fields.CPUThreadAllocationPolicy.ALL
    prefer = fields.CPUThreadAllocationPolicy.PREFER
    flavor = specs.get(CPU_THREAD_POLICY_KEY)
    image = values.image_value(props, CPU_THREAD_POLICY_PROP)
    if flavor is not None:
        flavor = values.parse_enum(CPU_THREAD_POLICY_KEY, flavor, allowed)
    if image is not None:
        image = values.parse_enum(CPU_THREAD_POLICY_PROP, image, allowed)
    # An unset flavor policy lets the image choose; 'prefer' wins over the
    # image (as in Nova); any other may not be contradicted.
    if flavor is None:
        return image, CPU_THREAD_POLICY_PROP
    if flavor != prefer and image is not None and image != flavor:
        raise values.conflict(
            CPU_THREAD_POLICY_PROP, image, CPU_THREAD_POLICY_KEY, flavor,
            'an image may not change a CPU thread policy its flavor sets, '
            'unless the flavor sets %r' % prefer)
    return flavor, CPU_THREAD_POLICY_KEY


def _dedicated_mask(
    specs: Mapping[str, object], vcpus: int,
) -> frozenset[int] | None:
    """Nova's ``get_dedicated_cpu_constraint``."""
    mask = specs.get(CPU_DEDICATED_MASK_KEY)
    if mask is None:
        return None
    pcpus = values.parse_mask(CPU_DEDICATED_MASK_KEY, mask, vcpus)
    everything = frozenset(range(vcpus))
    if not pcpus or not everything - pcpus:
        raise values.invalid(
            CPU_DEDICATED_MASK_KEY, mask, 'must pin some of the vCPUs and '
            'leave some unpinned (the flavor has %d)' % vcpus)
    if not pcpus <= everything:
        raise values.invalid(
            CPU_DEDICATED_MASK_KEY, mask, "must name only the flavor's "
            'vCPUs 0-%d' % (vcpus - 1))
    return pcpus


@dataclasses.dataclass(frozen=True, slots=True)
class _Realtime:
    """``hw:cpu_realtime``'s vCPUs (None when off), and where they came
    from.
    """

    cpus: frozenset[int] | None
    key: str
    raw: object


def _realtime(
    specs: Mapping[str, object], props: Mapping[str, object], vcpus: int,
    emulator_policy: str | None,
) -> _Realtime:
    """Nova's ``get_realtime_cpu_constraint``."""
    flag = specs.get(CPU_REALTIME_KEY)
    enabled = (flag is not None and
               values.parse_bool(CPU_REALTIME_KEY, flag))
    flavor_mask = specs.get(CPU_REALTIME_MASK_KEY)
    image_mask = values.image_value(props, CPU_REALTIME_MASK_PROP)
    # NOTE: Nova parses only the mask it uses, and only with realtime on;
    # a malformed mask is an error here whenever it is set.
    flavor_rt = image_rt = None
    if flavor_mask is not None:
        flavor_rt = values.parse_mask(CPU_REALTIME_MASK_KEY, flavor_mask,
                                      vcpus)
    if image_mask is not None:
        image_rt = values.parse_mask(CPU_REALTIME_MASK_PROP, image_mask,
                                     vcpus)
    if not enabled:
        return _Realtime(None, CPU_REALTIME_KEY, flag)

    everything = frozenset(range(vcpus))
    # The image's mask is the more specific, so it wins.
    key: str
    raw: object
    if image_rt is not None:
        cpus, key, raw = image_rt, CPU_REALTIME_MASK_PROP, image_mask
    elif flavor_rt is not None:
        cpus, key, raw = flavor_rt, CPU_REALTIME_MASK_KEY, flavor_mask
    else:
        cpus, key, raw = everything, CPU_REALTIME_KEY, flag
    if not cpus:
        raise values.invalid(key, raw, 'must leave at least one vCPU '
                             'realtime')
    if not cpus <= everything:
        raise values.invalid(key, raw, "must name only the flavor's vCPUs "
                             '0-%d' % (vcpus - 1))
    if cpus == everything and emulator_policy is None:
        raise values.invalid(
            key, raw, 'with every vCPU realtime the emulator threads have '
            'nowhere to run: leave a vCPU out with %s (such as ^0) or set '
            '%s' % (CPU_REALTIME_MASK_KEY, EMULATOR_THREADS_KEY))
    return _Realtime(cpus, key, raw)


def _pinned_vcpus(
    vcpus: int, cpu_policy: str | None, policy_key: str, policy_raw: object,
    dedicated: frozenset[int] | None, mask: object, realtime: _Realtime,
) -> frozenset[int]:
    """Check the masks against the CPU policy; the vCPUs that are pinned.

    :param dedicated: ``hw:cpu_dedicated_mask``'s vCPUs, or None
    :param mask: ``hw:cpu_dedicated_mask`` as written
    """
    if cpu_policy not in fields.PINNED_CPU_POLICIES:
        if dedicated is not None:
            raise values.invalid(
                CPU_DEDICATED_MASK_KEY, mask,
                'a dedicated vCPU mask needs %s=%s' % (CPU_POLICY_KEY,
                                                       _MIXED))
        if realtime.cpus is not None:
            raise values.invalid(realtime.key, realtime.raw,
                                 'realtime vCPUs ' + _PINNED)
        return frozenset()
    if cpu_policy == _DEDICATED:
        if dedicated is not None:
            raise values.conflict(
                CPU_DEDICATED_MASK_KEY, mask,
                policy_key, policy_raw, 'a dedicated vCPU mask needs %s=%s '
                '(with %s every vCPU is pinned)'
                % (CPU_POLICY_KEY, _MIXED, _DEDICATED))
        return frozenset(range(vcpus))
    # mixed: the mask, or with realtime, the realtime vCPUs, are pinned.
    if dedicated is not None and realtime.cpus is not None:
        raise values.conflict(
            CPU_DEDICATED_MASK_KEY, mask,
            realtime.key, realtime.raw, '%s=%s takes its pinned vCPUs from '
            'one mask, not both' % (CPU_POLICY_KEY, _MIXED))
    pinned = dedicated if dedicated is not None else realtime.cpus
    if pinned is None:
        raise values.invalid(
            policy_key, policy_raw, 'needs %s (or %s=true with %s) to say '
            'which vCPUs are pinned' % (CPU_DEDICATED_MASK_KEY,
                                        CPU_REALTIME_KEY,
                                        CPU_REALTIME_MASK_KEY))
    return pinned


# -- the request -------------------------------------------------------------


@dataclasses.dataclass
class _Setting:
    """A policy the request takes, and where it came from (for errors)."""

    #: the policy, e.g. 'dedicated'
    value: str | None
    #: the extra spec or image property that set it
    key: str
    #: what that key held (a policy name, an amount, a trait value)
    raw: object

    @classmethod
    def of(cls, value: str | None, key: str) -> '_Setting':
        """A policy a key named as it is."""
        return cls(value, key, value)


def parse_request(
    vcpus: int,
    memory_mb: int,
    extra_specs: Mapping[str, str] | None = None,
    image_props: Mapping[str, object] | None = None,
) -> CPURequest:
    """Validate a flavor (and image) and say what it asks of the host.

    :param vcpus: the flavor's vCPUs
    :param memory_mb: the flavor's memory in MiB
    :param extra_specs: the flavor's extra specs (strings, as Nova keeps
        them)
    :param image_props: the image's properties as Nova's ``ImageMetaProps``
        holds them (``hw_numa_cpus`` a list of sets, ``hw_numa_mem`` a list
        of ints, ``traits_required`` a list of names); strings are accepted
        where the meaning is plain
    :raises: exception.Invalid subclasses, one sentence naming the key, the
        value and what is allowed
    :returns: the request
    """
    vcpus, memory_mb = _flavor_size(vcpus, memory_mb)
    specs: Mapping[str, object] = dict(extra_specs or {})
    props: Mapping[str, object] = dict(image_props or {})
    _check_key_names(specs, props)

    policy = _Setting.of(*_cpu_policy(specs, props))
    thread = _Setting.of(*_cpu_thread_policy(specs, props))
    emulator_policy, emulator_key = _emulator_threads(specs)
    dedicated = _dedicated_mask(specs, vcpus)
    realtime = _realtime(specs, props, vcpus, emulator_policy)
    res = cpu_request_placement.cpu_resources(specs)
    _apply_cpu_resources(policy, res, vcpus, emulator_policy, emulator_key)
    _apply_hyperthreading_trait(thread, specs, props)
    _check_thread_policy(thread, policy)
    check_emulator_threads_cpu_policy(
        emulator_policy, policy.value, emulator_key, policy.key, policy.raw)
    pinned = _pinned_vcpus(vcpus, policy.value, policy.key, policy.raw,
                           dedicated, specs.get(CPU_DEDICATED_MASK_KEY),
                           realtime)

    nodes, nodes_key = cpu_request_numa.numa_nodes(specs, props)
    pagesize = cpu_request_numa.page_size(specs, props)
    maps = cpu_request_numa.numa_maps(specs, props)
    request = CPURequest(
        vcpus=vcpus, memory_mb=memory_mb, cpu_policy=policy.value,
        cpu_thread_policy=thread.value,
        emulator_threads_policy=emulator_policy,
        dedicated_cpus=pinned,
        realtime_cpus=realtime.cpus or frozenset(),
        numa_nodes=nodes, pagesize=pagesize,
        vcpu_resources=res.vcpu, pcpu_resources=res.pcpu)
    # As in Nova, a guest without a NUMA topology ignores the per-node
    # mappings (parsed above all the same).
    if not request.needs_numa_topology:
        return request
    numa_cpus, numa_mem = cpu_request_numa.numa_layout(
        maps, vcpus, memory_mb, nodes or 1, nodes_key)
    return dataclasses.replace(request, numa_cpus=numa_cpus,
                               numa_mem=numa_mem)


def _flavor_size(vcpus: int, memory_mb: int) -> tuple[int, int]:
    """The flavor's vCPUs and memory, checked."""
    vcpus = values.parse_int('vcpus', vcpus, 1)
    if vcpus > MAX_VCPUS:
        raise values.invalid('vcpus', vcpus, 'must be at most %d'
                             % MAX_VCPUS)
    return vcpus, values.parse_int('memory_mb', memory_mb, 1)


def _check_key_names(specs: Mapping[str, object],
                     props: Mapping[str, object]) -> None:
    for source, mapping in (('extra spec', specs), ('image property', props)):
        for name in mapping:
            if not isinstance(name, str):
                raise values.invalid('%s name' % source, name,
                                     'must be a string')


def _apply_cpu_resources(policy: _Setting,
                         res: cpu_request_placement.CPUResources,
                         vcpus: int, emulator_policy: str | None,
                         emulator_key: str) -> None:
    """Explicit ``resources:VCPU``/``PCPU`` stand in for hw:cpu_policy."""
    for res_key, amount in ((res.vcpu_key, res.vcpu),
                            (res.pcpu_key, res.pcpu)):
        if policy.value is not None and amount:
            raise values.conflict(res_key, amount, policy.key, policy.value,
                                  'set the CPU policy with one or the other')
    if res.vcpu and res.pcpu:
        raise values.conflict(res.vcpu_key, res.vcpu, res.pcpu_key, res.pcpu,
                              'ask for shared or dedicated CPUs, not both')
    if res.pcpu:
        overhead = (EMULATOR_THREADS_ISOLATE_PCPUS
                    if emulator_policy == _ISOLATE else 0)
        if res.pcpu != vcpus + overhead:
            why = (' plus %d for %s=%s, so %d' % (
                overhead, emulator_key, emulator_policy, vcpus + overhead)
                if overhead else '')
            raise values.invalid(
                res.pcpu_key, res.pcpu, "must be the flavor's %d vCPUs%s"
                % (vcpus, why))
        policy.value, policy.key, policy.raw = (_DEDICATED, res.pcpu_key,
                                                res.pcpu)
    if res.vcpu:
        policy.value, policy.key, policy.raw = _SHARED, res.vcpu_key, res.vcpu


def _apply_hyperthreading_trait(thread: _Setting,
                                specs: Mapping[str, object],
                                props: Mapping[str, object]) -> None:
    """``trait:HW_CPU_HYPERTHREADING`` stands in for the thread policy."""
    trait, trait_key = cpu_request_placement.hyperthreading_trait(
        specs, props)
    if trait is None:
        return
    if thread.value is not None:
        raise values.conflict(
            trait_key, trait, thread.key, thread.value,
            'set the CPU thread policy with one or the other')
    thread.value = {
        cpu_request_placement.TRAIT_FORBIDDEN:
            fields.CPUThreadAllocationPolicy.ISOLATE,
        cpu_request_placement.TRAIT_REQUIRED:
            fields.CPUThreadAllocationPolicy.REQUIRE,
    }[trait]
    thread.key, thread.raw = trait_key, trait


def _check_thread_policy(thread: _Setting, policy: _Setting) -> None:
    """A CPU thread policy needs pinned vCPUs."""
    if (thread.value is None
            or policy.value in fields.PINNED_CPU_POLICIES):
        return
    allowed = 'a CPU thread policy ' + _PINNED
    if policy.value is None:
        raise values.invalid(thread.key, thread.raw, allowed)
    raise values.conflict(thread.key, thread.raw, policy.key, policy.raw,
                          allowed)
