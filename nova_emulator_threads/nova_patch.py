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

"""The seams: the three places where Nova 34 offers no plugin point.

Nova reads the emulator threads policy, turns it into a placement
request, and picks the emulator pCPU, in code that no entry point, driver
method or filter reaches:

(a) ``nova.virt.hardware.get_emulator_thread_policy_constraint(flavor)``
    is the one function every Nova caller asks for the policy: nova-api
    (``numa_get_constraints``, when a server is created, resized or
    rebuilt), nova-scheduler (``ResourceRequest._translate_pinning_policies``)
    and nova-compute (``numa_get_constraints`` in resize claims, and the
    libvirt driver's realtime check). It only knows
    ``hw:emulator_threads_policy``. We replace it with
    ``cpu_request.emulator_threads_policy``, which reads
    ``hw:cpu_emulator_threads`` and its alias, rejects different values,
    and whose errors become the Nova exception the API turns into an
    HTTP 400.

(b) ``nova.scheduler.utils.ResourceRequest._translate_pinning_policies``
    asks placement for ``PCPU = vCPUs + 1`` under ``isolate``: a constant
    in Nova's code. We wrap it so that the emulator threads' share of the
    request is ``overhead.estimate_instance_overhead``'s figure instead.
    Nova's method still does everything else (``VCPU`` of ``mixed``
    guests, the hyperthreading trait); we only correct the ``PCPU``
    amount it wrote, and, with ``[emulator_threads] shared_pool_vcpus``,
    add the ``VCPU`` a ``share`` guest's emulator threads take from the
    shared pool.

(c) ``nova.virt.hardware._pack_instance_onto_cores`` pins a guest NUMA
    cell's vCPUs on a host cell and, through its nested ``_get_reserved``
    (which nothing outside can reach), picks the emulator pCPU of
    ``isolate``. Nova's fitter (``numa_fit_instance_to_host``) calls it for
    ``NUMATopologyFilter`` in nova-scheduler and for the NUMA claim of
    nova-compute. Under ``[emulator_threads] emulator_pcpu_siblings =
    avoid`` we wrap it: Nova's function runs unchanged, then the emulator
    pCPU is chosen again off the cores of the guest's vCPUs
    (``virt.packing.choose_reserved_pcpus``, our engine's choice), and the
    cell does not fit when there is none. Under ``allow`` (the default) it
    is Nova's function, called as it is.

All callers look the functions up at call time (``hardware.get_...``,
a method on the class), so replacing the attributes reaches them all;
``apply`` also rebinds any Nova module that imported the function by name.

``apply()`` runs when our validator, filter or driver module is imported,
which is how the code gets into nova-api, nova-scheduler and nova-compute
respectively. It patches once, and only a Nova release the seams were
tested with (``TESTED_NOVA_VERSIONS``); on another release it logs an
error and changes nothing, unless ``[emulator_threads]
allow_untested_nova`` is set.
"""

import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

import os_resource_classes as orc
from nova import exception as nova_exception
from nova.scheduler import utils as scheduler_utils
from nova.virt import hardware as nova_hardware
from oslo_log import log as logging
from packaging import version as pkg_version

from nova_emulator_threads import conf
from nova_emulator_threads import cpu_request
from nova_emulator_threads import exception
from nova_emulator_threads import overhead
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import packing

LOG = logging.getLogger(__name__)
CONF = conf.CONF

#: Nova releases the seams were tested with: from the first (included) to
#: the second (excluded). Both patched functions are private to Nova and
#: may change in any release, so the next release must be tested before it
#: is added here.
TESTED_NOVA_VERSIONS = ('34.0.0', '35.0.0')

#: Nova's emulator thread policy function (seam a).
POLICY_FUNCTION = 'get_emulator_thread_policy_constraint'
#: Nova's placement translation method (seam b).
PINNING_METHOD = '_translate_pinning_policies'
#: Nova's packing of a guest cell onto a host cell's cores (seam c).
PACKING_FUNCTION = '_pack_instance_onto_cores'


_lock = threading.Lock()
#: None until ``apply`` has decided; then whether the seams are in force.
_applied: bool | None = None
#: Nova's originals, to undo the seams (``revert``, for tests).
_originals: dict[str, Callable[..., Any]] = {}


def installed_nova_version() -> str:
    """The version of the installed ``nova`` distribution."""
    return importlib.metadata.version('nova')


def is_tested_nova(nova_version: str) -> bool:
    """Whether the seams were tested with this Nova version."""
    try:
        found = pkg_version.Version(nova_version)
    except pkg_version.InvalidVersion:
        return False
    first, last = (pkg_version.Version(v) for v in TESTED_NOVA_VERSIONS)
    # A pre-release or dev build of the first tested version (34.0.0rc1)
    # compares lower than it, but it is the code we tested against.
    return first <= pkg_version.Version(found.base_version) < last


def get_emulator_thread_policy_constraint(flavor: Any) -> str | None:
    """Seam (a): the emulator threads policy of a flavor, ours or Nova's key.

    :param flavor: ``nova.objects.Flavor`` (or a dict with extra specs)
    :raises: nova.exception.InvalidEmulatorThreadsPolicy, which nova-api
        turns into HTTP 400, with our sentence naming the keys and values
    :returns: 'share', 'isolate' or None
    """
    extra_specs = flavor.get('extra_specs') or {}
    try:
        return cpu_request.emulator_threads_policy(extra_specs)
    except exception.Invalid as exc:
        # Nova's callers (and the API's INVALID_FLAVOR_IMAGE_EXCEPTIONS)
        # know Nova's exception; ``message`` replaces its generic text.
        raise nova_exception.InvalidEmulatorThreadsPolicy(
            message=str(exc)) from exc


def _emulator_overhead(flavor: Any, cpu_policy: str,
                       emulator_policy: str | None) -> dict[str, int]:
    """What our overhead estimate gives the emulator threads.

    The request is built from what nova-api already validated (Nova's CPU
    policy, and the emulator threads policy through seam (a)) rather than
    parsed again: the scheduler must not refuse a request the API took.
    """
    request = cpu_request.CPURequest(
        vcpus=flavor.vcpus, memory_mb=flavor.memory_mb,
        cpu_policy=cpu_policy, emulator_threads_policy=emulator_policy)
    return overhead.estimate_instance_overhead(
        request, CONF.emulator_threads.shared_pool_vcpus)


def _emulator_pcpus(flavor: Any, cpu_policy: str,
                    emulator_policy: str | None) -> int:
    """The PCPUs our overhead estimate gives the emulator threads."""
    return _emulator_overhead(flavor, cpu_policy, emulator_policy).get(
        orc.PCPU, 0)


def _add_shared_pool_vcpus(resources: dict[str, int], flavor: Any,
                           cpu_policy: str,
                           emulator_policy: str | None) -> None:
    """Add the ``VCPU`` of the shared pool a ``share`` guest's emulator
    threads claim (``[emulator_threads] shared_pool_vcpus``; Nova claims
    none). A host without ``VCPU`` inventory, that is without
    ``cpu_shared_set``, then has no allocation candidate for the guest.
    """
    vcpus = _emulator_overhead(flavor, cpu_policy, emulator_policy).get(
        orc.VCPU, 0)
    if not vcpus:
        return
    resources[orc.VCPU] = resources.get(orc.VCPU, 0) + vcpus
    LOG.debug('Requesting %(vcpu_rc)s=%(total)d, of which %(ours)d for '
              'emulator threads in the shared pool',
              {'vcpu_rc': orc.VCPU, 'total': resources[orc.VCPU],
               'ours': vcpus})


def _translate_pinning_policies(self: Any, flavor: Any, image: Any) -> None:
    """Seam (b): Nova's translation, with our emulator threads overhead.

    Nova adds exactly one ``PCPU`` when the guest has pinned vCPUs
    (``dedicated`` or ``mixed``) and the policy is ``isolate``, and does
    nothing for the emulator threads otherwise; explicit
    ``resources:PCPU`` requests never reach that branch. We take Nova's
    +1 out and put our overhead's figure in.
    """
    _originals[PINNING_METHOD](self, flavor, image)
    cpu_policy = nova_hardware.get_cpu_policy_constraint(flavor, image)
    if cpu_policy not in fields.PINNED_CPU_POLICIES:
        return
    emulator_policy = get_emulator_thread_policy_constraint(flavor)
    nova_pcpus = 0
    if emulator_policy == fields.CPUEmulatorThreadsPolicy.ISOLATE:
        nova_pcpus = 1
    resources = self.get_request_group(None).resources
    _add_shared_pool_vcpus(resources, flavor, cpu_policy, emulator_policy)
    ours = _emulator_pcpus(flavor, cpu_policy, emulator_policy)
    if ours == nova_pcpus:
        return
    resources[orc.PCPU] = resources.get(orc.PCPU, 0) - nova_pcpus + ours
    LOG.debug('Requesting %(pcpu_rc)s=%(total)d, of which %(ours)d for '
              'emulator threads', {'pcpu_rc': orc.PCPU,
                                   'total': resources[orc.PCPU],
                                   'ours': ours})


#: The fields of an ``InstanceNUMACell`` Nova's packing writes when it
#: succeeds (``cpu_pinning`` is a view of ``cpu_pinning_raw``).
_PACKED_FIELDS = ('id', 'cpu_pinning_raw', 'cpuset_reserved')
_UNSET = object()


def _pack_instance_onto_cores(host_cell: Any, instance_cell: Any,
                              num_cpu_reserved: int = 0) -> Any:
    """Seam (c): Nova's packing, the emulator pCPU off the vCPUs' cores.

    Nova's ``_get_reserved`` takes the first free pCPU, walking the host
    cell's free sibling sets, that no vCPU got. Under ``avoid`` the
    emulator pCPU is the first, in the same walk, on a core that runs
    none of the vCPUs; with none, the cell does not fit, and the instance
    cell is left as Nova leaves it when its packing fails (Nova's fitter
    keys its caches on the cell id a successful packing writes). Choosing
    after Nova's loop rather than inside it gives the same answer: a
    packing with fewer threads per core, which Nova's loop would try
    next, uses at least as many cores.
    """
    original = _originals[PACKING_FUNCTION]
    if (not num_cpu_reserved or
            CONF.emulator_threads.emulator_pcpu_siblings ==
            fields.EmulatorPCPUSiblings.ALLOW):
        return original(host_cell, instance_cell,
                        num_cpu_reserved=num_cpu_reserved)
    before = {name: (getattr(instance_cell, name)
                     if instance_cell.obj_attr_is_set(name) else _UNSET)
              for name in _PACKED_FIELDS}
    packed = original(host_cell, instance_cell,
                      num_cpu_reserved=num_cpu_reserved)
    if packed is None:
        return None
    reserved = packing.choose_reserved_pcpus(
        [sib for sib in host_cell.free_siblings if sib],
        sorted(packed.cpu_pinning.items()), num_cpu_reserved,
        thread_isolate=(packed.cpu_thread_policy ==
                        fields.CPUThreadAllocationPolicy.ISOLATE),
        cores=host_cell.siblings)
    if reserved is None:
        LOG.debug('No free pCPU on host cell %(cell)s is on a core without '
                  'one of the vCPUs %(pins)s: the emulator threads may not '
                  'go there ([emulator_threads] emulator_pcpu_siblings = '
                  'avoid)', {'cell': host_cell.id,
                             'pins': packed.cpu_pinning})
        for name, value in before.items():
            if value is _UNSET:
                delattr(instance_cell, name)
            else:
                setattr(instance_cell, name, value)
        return None
    packed.cpuset_reserved = set(reserved)
    return packed


def _patch() -> None:
    original = nova_hardware.get_emulator_thread_policy_constraint
    _originals[POLICY_FUNCTION] = original
    # ``__wrapped__`` names what a seam replaced, as functools.wraps does.
    get_emulator_thread_policy_constraint.__wrapped__ = original  # type: ignore[attr-defined]
    # Every caller in Nova 34 (the API's numa_get_constraints, the
    # scheduler's ResourceRequest, the libvirt driver) looks the function
    # up in nova.virt.hardware at call time: rebinding that one name is
    # enough.
    setattr(nova_hardware, POLICY_FUNCTION,
            get_emulator_thread_policy_constraint)

    method = getattr(scheduler_utils.ResourceRequest, PINNING_METHOD)
    _originals[PINNING_METHOD] = method
    _translate_pinning_policies.__wrapped__ = method  # type: ignore[attr-defined]
    setattr(scheduler_utils.ResourceRequest, PINNING_METHOD,
            _translate_pinning_policies)

    # Nova's _numa_fit_instance_cell looks the packing up in
    # nova.virt.hardware at call time.
    packer = getattr(nova_hardware, PACKING_FUNCTION)
    _originals[PACKING_FUNCTION] = packer
    _pack_instance_onto_cores.__wrapped__ = packer  # type: ignore[attr-defined]
    setattr(nova_hardware, PACKING_FUNCTION, _pack_instance_onto_cores)


def apply() -> bool:
    """Apply the seams once; return whether they are in force.

    Safe to call any number of times, from any service: the first call
    decides, later calls return its answer.
    """
    global _applied
    with _lock:
        if _applied is not None:
            return _applied
        nova_version = installed_nova_version()
        if not is_tested_nova(nova_version):
            if not CONF.emulator_threads.allow_untested_nova:
                LOG.error(
                    'nova-emulator-threads was tested with Nova %(first)s '
                    'up to (not including) %(last)s, but Nova '
                    '%(found)s is installed: its patches to Nova are NOT '
                    'applied, and hw:cpu_emulator_threads is not '
                    'available. Install a tested Nova release, or set '
                    '[emulator_threads] allow_untested_nova = True to '
                    'apply them anyway.',
                    {'first': TESTED_NOVA_VERSIONS[0],
                     'last': TESTED_NOVA_VERSIONS[1],
                     'found': nova_version})
                _applied = False
                return False
            LOG.warning(
                'Applying the nova-emulator-threads patches to Nova '
                '%(found)s, which they were not tested with (tested: '
                '%(first)s up to, not including, %(last)s), because '
                '[emulator_threads] allow_untested_nova is set.',
                {'first': TESTED_NOVA_VERSIONS[0],
                 'last': TESTED_NOVA_VERSIONS[1], 'found': nova_version})
        _patch()
        _applied = True
        LOG.info('nova-emulator-threads patched Nova %s: %s.%s, %s.%s and '
                 '%s.%s', nova_version, nova_hardware.__name__,
                 POLICY_FUNCTION,
                 scheduler_utils.ResourceRequest.__qualname__,
                 PINNING_METHOD, nova_hardware.__name__, PACKING_FUNCTION)
        return True


def is_applied() -> bool:
    """Whether the seams are in force in this process."""
    return bool(_applied)


def revert() -> None:
    """Undo the seams and forget the decision (for tests)."""
    global _applied
    with _lock:
        if POLICY_FUNCTION in _originals:
            setattr(nova_hardware, POLICY_FUNCTION,
                    _originals[POLICY_FUNCTION])
        if PINNING_METHOD in _originals:
            setattr(scheduler_utils.ResourceRequest, PINNING_METHOD,
                    _originals[PINNING_METHOD])
        if PACKING_FUNCTION in _originals:
            setattr(nova_hardware, PACKING_FUNCTION,
                    _originals[PACKING_FUNCTION])
        _originals.clear()
        _applied = None
