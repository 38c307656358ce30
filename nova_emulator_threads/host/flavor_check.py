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


"""What a Nova guest's flavor requires of its live placement.

Nova records the flavor a guest was built from in the domain XML
(``nova:instance/nova:flavor``, extra specs included, and the image
properties under ``nova:image``). That is enough to know the CPU policy,
the emulator threads policy and the realtime vCPUs. It is not enough to
know the instance's NUMA topology (host cells, ``cpu_pinning``,
``cpuset_reserved``: those are in Nova's database only) nor the host's
``[compute] cpu_shared_set`` (in ``nova.conf``), so the check takes the
vCPU pins libvirt applies as given and verifies what follows from the
policy (``virt.libvirt.cputune``, Nova's placement rules):

* every dedicated vCPU is pinned to one pCPU;
* ``isolate``: the emulator threads have one pCPU, which runs no vCPU of
  the guest (which pCPU Nova reserved is not recorded; the persistent
  definition holds Nova's choice and ``live-config-differ`` compares it);
* ``share``: with ``cpu_shared_set`` given to the audit, the emulator
  threads run on exactly that set (with ``shared_pool_affinity = numa``,
  on its CPUs on the NUMA nodes of the guest's vCPUs, or the whole set
  when those nodes have none); without it, either over the guest's
  non-realtime vCPUs (Nova without a shared set) or on pCPUs that run no
  vCPU of the guest (a shared set), and nothing else;
* no policy: the emulator threads float over the pCPUs of the
  non-realtime vCPUs, which is what Nova writes back on every hard
  reboot, resize or migration; a guest moved elsewhere by hand is
  reported, because Nova will undo it;
* I/O threads are pinned with the emulator threads (Nova 34).

Guests without pinned vCPUs (``hw:cpu_policy`` unset or ``shared``) are
not checked: Nova gives their emulator threads no placement of its own.
"""

import dataclasses
from collections.abc import Mapping

from nova_emulator_threads import cpu_request
from nova_emulator_threads import exception
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import cputune

_ISOLATE = fields.CPUEmulatorThreadsPolicy.ISOLATE
_SHARE = fields.CPUEmulatorThreadsPolicy.SHARE


@dataclasses.dataclass(frozen=True)
class NovaPolicy:
    """A Nova guest and the CPU request its flavor makes."""

    instance: str | None
    flavor: str | None
    #: None when the metadata has no extra specs, or they cannot be read.
    request: cpu_request.CPURequest | None
    #: why ``request`` is None.
    reason: str | None = None

    @property
    def isolate(self) -> bool:
        return (self.request is not None and
                self.request.emulator_threads_policy == _ISOLATE)

    @property
    def pinned(self) -> bool:
        return (self.request is not None and
                self.request.cpu_policy in fields.PINNED_CPU_POLICIES)

    def describe(self) -> str:
        """``emulator threads policy isolate`` and the like, for people."""
        if self.request is None:
            return 'policy unknown: %s' % self.reason
        return 'hw:cpu_policy=%s, emulator threads policy %s' % (
            self.request.cpu_policy or 'shared',
            self.request.emulator_threads_policy or 'none')


def read_policy(domain: libvirt_domains.Domain) -> NovaPolicy | None:
    """The Nova policy of a guest; None for a guest Nova did not create."""
    nova = domain.nova
    if nova is None:
        return None
    if nova.extra_specs is None:
        return NovaPolicy(nova.instance_name, nova.flavor_name, None,
                          'the metadata does not record the flavor extra '
                          'specs (older Nova)')
    if nova.memory_mb is None:
        return NovaPolicy(nova.instance_name, nova.flavor_name, None,
                          'the metadata does not record the flavor memory')
    try:
        request = cpu_request.parse_request(
            nova.vcpus or domain.live.vcpus, nova.memory_mb,
            nova.extra_specs, nova.image_props)
    except exception.Invalid as exc:
        return NovaPolicy(nova.instance_name, nova.flavor_name, None,
                          str(exc))
    return NovaPolicy(nova.instance_name, nova.flavor_name, request)


def _finding(severity: str, domain: libvirt_domains.Domain, message: str,
             fixable: bool = True) -> findings.Finding:
    return findings.Finding(
        severity,
        findings.NOVA_POLICY,
        domain.name,
        message,
        fixable_by_pin=fixable)


def _nova_emulator_set(request: cpu_request.CPURequest,
                       vcpu_pins: dict[int, frozenset[int]],
                       cpu_shared_set: frozenset[int]) -> frozenset[int]:
    """What Nova's libvirt driver pins a non-isolate guest's emulator
    threads to, given where its vCPUs are pinned.

    The guest's vCPUs go into one cell (the union over cells is what the
    emulator set is made of), whose host cell's shared CPUs are where the
    unpinned vCPUs float now.
    """
    dedicated = request.dedicated_cpus
    unpinned = frozenset(vcpu_pins) - dedicated
    shared: frozenset[int] = frozenset()
    for vcpu in unpinned:
        shared |= vcpu_pins[vcpu]
    pinning = {v: min(vcpu_pins[v]) for v in dedicated}
    cell = topology.InstanceCell(
        id=0, cpuset=unpinned, pcpuset=dedicated, memory=request.memory_mb,
        cpu_policy=request.cpu_policy, cpu_pinning=pinning)
    fitted = topology.InstanceTopology(
        cells=(cell,), emulator_threads_policy=request.emulator_threads_policy,
        realtime_cpus=request.realtime_cpus)
    host = topology.HostTopology(
        cells=(topology.HostCell(
            id=0, cpuset=shared, pcpuset=frozenset(pinning.values()),
            memory=request.memory_mb),),
        cpu_shared_set=cpu_shared_set)
    return cputune.emulatorpin_cpuset(fitted, cpu_shared_set, host=host)


def _numa_affinity_applies(request: cpu_request.CPURequest,
                            cpu_shared_set: frozenset[int],
                            shared_pool_affinity: str,
                            cpu_nodes: Mapping[int, int] | None) -> bool:
    """Whether ``shared_pool_affinity = numa`` places this guest's
    emulator threads (a ``share`` guest, the shared set and the CPUs'
    nodes known).
    """
    return (request.emulator_threads_policy == _SHARE and
            bool(cpu_shared_set) and cpu_nodes is not None and
            shared_pool_affinity == fields.SharedPoolAffinity.NUMA)


def numa_local_share_set(
        request: cpu_request.CPURequest,
        vcpu_pins: dict[int, frozenset[int]],
        cpu_shared_set: frozenset[int],
        shared_pool_affinity: str,
        cpu_nodes: Mapping[int, int] | None) -> frozenset[int] | None:
    """Where ``shared_pool_affinity = numa`` puts a ``share`` guest's
    emulator threads, given where its vCPUs are pinned.

    :param cpu_shared_set: the host's usable ``[compute] cpu_shared_set``
    :returns: the set, or None where the option does not place them (see
        ``_numa_affinity_applies``) or a pCPU's node is unknown
    """
    if cpu_nodes is None or not _numa_affinity_applies(
            request, cpu_shared_set, shared_pool_affinity, cpu_nodes):
        return None
    return _numa_local_emulator_set(request, vcpu_pins, cpu_shared_set,
                                    cpu_nodes)


def _numa_local_emulator_set(
        request: cpu_request.CPURequest,
        vcpu_pins: dict[int, frozenset[int]],
        cpu_shared_set: frozenset[int],
        cpu_nodes: Mapping[int, int]) -> frozenset[int] | None:
    """Where ``shared_pool_affinity = numa`` puts a ``share`` guest's
    emulator threads, given where its vCPUs are pinned.

    The guest's cells are on the NUMA nodes of its vCPUs' pCPUs; the
    choice itself is ``cputune``'s. None when a pCPU's node is unknown.
    """
    nodes: dict[int, set[int]] = {}
    for vcpu, pcpus in vcpu_pins.items():
        if not pcpus or any(p not in cpu_nodes for p in pcpus):
            return None
        nodes.setdefault(cpu_nodes[min(pcpus)], set()).add(vcpu)
    dedicated = request.dedicated_cpus
    cells = tuple(
        topology.InstanceCell(
            id=node, cpuset=frozenset(vcpus) - dedicated,
            pcpuset=frozenset(vcpus) & dedicated, memory=request.memory_mb,
            cpu_policy=request.cpu_policy,
            cpu_pinning={v: min(vcpu_pins[v]) for v in vcpus
                         if v in dedicated})
        for node, vcpus in sorted(nodes.items()))
    fitted = topology.InstanceTopology(
        cells=cells, emulator_threads_policy=request.emulator_threads_policy,
        realtime_cpus=request.realtime_cpus)
    host = topology.HostTopology(
        cells=tuple(
            topology.HostCell(
                id=node, memory=request.memory_mb, pcpuset=frozenset(),
                cpuset=frozenset(c for c in cpu_shared_set
                                 if cpu_nodes.get(c) == node))
            for node in sorted(set(cpu_nodes.values()))),
        cpu_shared_set=cpu_shared_set)
    return cputune.emulatorpin_cpuset(
        fitted, cpu_shared_set, host=host,
        shared_pool_affinity=fields.SharedPoolAffinity.NUMA)


def check(nova: NovaPolicy, domain: libvirt_domains.Domain,
          online: frozenset[int],
          cpu_shared_set: frozenset[int] | None = None,
          shared_pool_affinity: str = fields.SharedPoolAffinity.ANY,
          cpu_nodes: Mapping[int, int] | None = None,
          ) -> list[findings.Finding]:
    """Compare a Nova guest's live placement with what its policy needs.

    :param nova: what ``read_policy`` found
    :param domain: the guest as libvirt reports it
    :param online: the host's online CPUs (Nova leaves offline CPUs of
        ``cpu_shared_set`` out)
    :param cpu_shared_set: the host's ``[compute] cpu_shared_set``, or
        None when not known
    :param shared_pool_affinity: ``[emulator_threads]
        shared_pool_affinity`` of the host; with ``numa`` (and
        ``cpu_shared_set`` and ``cpu_nodes`` known) a ``share`` guest's
        emulator threads belong on the shared CPUs of its NUMA nodes
    :param cpu_nodes: the host's CPU -> NUMA node
    """
    request = nova.request
    if request is None:
        if nova.reason and domain.nova and domain.nova.extra_specs:
            return [findings.Finding(
                findings.WARNING, findings.NOVA_UNCHECKED, domain.name,
                'the flavor recorded in the Nova metadata cannot be read '
                'as a CPU request, so its placement is not checked: %s'
                % nova.reason)]
        return []
    if not nova.pinned:
        return []
    pins = dict(domain.vcpu_pins)
    found = _vcpu_findings(request, domain, pins)
    if found:
        return found
    if request.emulator_threads_policy == _ISOLATE:
        found = _isolate_findings(domain, pins)
    else:
        found = _floating_emulator_findings(
            request, domain, pins, online, cpu_shared_set,
            shared_pool_affinity, cpu_nodes)
        if any(f.code == findings.NOVA_UNCHECKED for f in found):
            return found
    return found + _iothread_findings(domain)


def _vcpu_findings(request: cpu_request.CPURequest,
                   domain: libvirt_domains.Domain,
                   pins: Mapping[int, frozenset[int]],
                   ) -> list[findings.Finding]:
    """What keeps the emulator threads from being checked: a resize in
    progress, or dedicated vCPUs that are not pinned.
    """
    if request.vcpus != len(pins):
        return [findings.Finding(
            findings.WARNING, findings.NOVA_UNCHECKED, domain.name,
            'the flavor in the Nova metadata has %d vCPUs but the guest has '
            '%d (a resize in progress?), so its placement is not checked'
            % (request.vcpus, len(pins)))]
    floating = [v for v in sorted(request.dedicated_cpus)
                if len(pins.get(v, ())) != 1]
    if floating:
        return [_finding(
            findings.ERROR, domain,
            'vCPUs %s are dedicated (hw:cpu_policy=%s) but may run on '
            'several pCPUs (%s); Nova pins each dedicated vCPU to one pCPU'
            % (findings.fmt(set(floating)), request.cpu_policy,
               '; '.join('vCPU %d: %s' % (v, findings.fmt(pins.get(v)))
                         for v in floating)),
            fixable=False)]
    return []


def _isolate_findings(domain: libvirt_domains.Domain,
                      pins: Mapping[int, frozenset[int]],
                      ) -> list[findings.Finding]:
    """isolate: one pCPU for the emulator threads, running no vCPU."""
    emulator = domain.emulator_pins
    vcpu_pcpus: frozenset[int] = frozenset().union(*pins.values())
    if len(emulator) == 1 and not emulator & vcpu_pcpus:
        return []
    return [_finding(
        findings.ERROR, domain,
        "emulator threads policy 'isolate' gives the emulator "
        "threads one pCPU that runs no vCPU of the guest, but "
        "they may run on %s; a hard reboot makes Nova write its "
        "placement again" % findings.fmt(emulator))]


def _floating_emulator_findings(
    request: cpu_request.CPURequest, domain: libvirt_domains.Domain,
    pins: dict[int, frozenset[int]], online: frozenset[int],
    cpu_shared_set: frozenset[int] | None, shared_pool_affinity: str,
    cpu_nodes: Mapping[int, int] | None,
) -> list[findings.Finding]:
    """share, or no policy: the emulator threads where Nova puts them."""
    emulator = domain.emulator_pins
    vcpu_pcpus: frozenset[int] = frozenset().union(*pins.values())
    policy_name = request.emulator_threads_policy
    shared = (cpu_shared_set & online if cpu_shared_set is not None
              else frozenset())
    try:
        expected = _nova_emulator_set(request, pins, shared)
    except exception.Invalid as exc:
        return [findings.Finding(
            findings.WARNING, findings.NOVA_UNCHECKED, domain.name,
            'cannot tell where Nova places the emulator threads: %s'
            % exc)]
    numa_local = _numa_affinity_applies(request, shared,
                                        shared_pool_affinity, cpu_nodes)
    local = (_numa_local_emulator_set(request, pins, shared, cpu_nodes)
             if numa_local and cpu_nodes is not None else None)
    if local is not None:
        expected = local
    unknown_shared_set = policy_name == _SHARE and cpu_shared_set is None
    if unknown_shared_set and not emulator & vcpu_pcpus:
        # Off the guest's vCPUs: [compute] cpu_shared_set, presumably.
        expected = emulator
    if emulator == expected:
        return []
    if policy_name != _SHARE:
        return [_finding(findings.WARNING, domain, (
            'the flavor sets no emulator threads policy, so '
            'Nova floats the emulator threads over the vCPUs '
            '(%s), but they may run on %s: Nova puts them back '
            'at the next hard reboot, resize or migration; '
            'set hw:cpu_emulator_threads on the flavor to '
            'keep them apart' %
            (findings.fmt(expected), findings.fmt(emulator))))]
    if cpu_shared_set is None:
        where = ('the pCPUs of the vCPUs (%s) or on [compute] '
                 'cpu_shared_set' % findings.fmt(expected))
    elif numa_local:
        where = ("the [compute] cpu_shared_set CPUs of the guest's NUMA "
                 'nodes (%s; [emulator_threads] shared_pool_affinity = '
                 'numa)' % findings.fmt(expected))
    else:
        where = '[compute] cpu_shared_set (%s)' % findings.fmt(expected)
    return [_finding(findings.ERROR, domain, (
        "emulator threads policy 'share' puts the emulator threads on %s, "
        'but they may run on %s' % (where, findings.fmt(emulator))))]


def _iothread_findings(domain: libvirt_domains.Domain,
                       ) -> list[findings.Finding]:
    """Nova pins I/O threads to the emulator set.

    A wrong emulator set is reported on its own, so they are compared with
    the live one.
    """
    found = []
    for iothread, pcpus in sorted(cputune.iothreadpin_cpusets(
            domain.emulator_pins).items()):
        actual = domain.iothread_pins.get(iothread)
        if actual is not None and actual != pcpus:
            found.append(_finding(
                findings.ERROR, domain,
                'I/O thread %d may run on %s, but Nova pins I/O threads '
                'with the emulator threads (%s)'
                % (iothread, findings.fmt(actual), findings.fmt(pcpus))))
    return found
