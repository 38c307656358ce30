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

"""What a flavor asks of placement directly: ``resources:`` and ``trait:``.

``resources[<group>]:VCPU`` / ``:PCPU`` stand in for ``hw:cpu_policy``
and ``trait[<group>]:HW_CPU_HYPERTHREADING`` (or the image's
``traits_required``) for ``hw:cpu_thread_policy``; Nova's
``_get_vcpu_pcpu_resources`` and ``_get_hyperthreading_trait``, as plain
values. The keys use placement's syntax, not the ``hw:`` namespace:
the group suffix is placement's (microversion 1.33), counted as Nova's
scheduler parses it. ``cpu_request.parse_request`` is the caller.
"""

import dataclasses
import re
from collections.abc import Mapping

import os_resource_classes as orc

from nova_emulator_threads import cpu_request_values as values

#: The image property that lists required traits.
TRAITS_REQUIRED_PROP = 'traits_required'
#: ``resources[<group>]:VCPU`` / ``:PCPU`` and
#: ``trait[<group>]:HW_CPU_HYPERTHREADING``. The group suffix is
#: placement's (microversion 1.33), as Nova's scheduler parses it.
RESOURCES_PREFIX = 'resources'
TRAIT_PREFIX = 'trait'
#: ``os_traits.HW_CPU_HYPERTHREADING`` (spelled out: a test checks it, and
#: the package does not need os-traits for one name).
HYPERTHREADING_TRAIT = 'HW_CPU_HYPERTHREADING'
TRAIT_REQUIRED = 'required'
TRAIT_FORBIDDEN = 'forbidden'
_GROUP_KEY_RE = re.compile(
    r'(%s|%s)([a-zA-Z0-9_-]{1,64})?:(.*)' % (RESOURCES_PREFIX, TRAIT_PREFIX))


@dataclasses.dataclass(frozen=True, slots=True)
class CPUResources:
    """Explicit ``resources[<group>]:VCPU|PCPU``: sums and a key of each."""

    vcpu: int | None
    pcpu: int | None
    vcpu_key: str
    pcpu_key: str


def cpu_resources(specs: Mapping[str, object]) -> CPUResources:
    """Nova's ``_get_vcpu_pcpu_resources``."""
    totals: dict[str, int] = {}
    keys: dict[str, str] = {}
    for key, raw in specs.items():
        match = _GROUP_KEY_RE.fullmatch(key)
        if (not match or match.group(1) != RESOURCES_PREFIX or
                match.group(3) not in (orc.VCPU, orc.PCPU)):
            continue
        # NOTE: Nova skips amounts that are not integers here (and its
        # scheduler skips negative ones); an amount that is silently
        # dropped is a mistake.
        amount = values.parse_int(key, raw, 0)
        rc = match.group(3)
        totals[rc] = totals.get(rc, 0) + amount
        keys.setdefault(rc, key)
    return CPUResources(
        vcpu=totals.get(orc.VCPU), pcpu=totals.get(orc.PCPU),
        vcpu_key=keys.get(orc.VCPU, '%s:%s' % (RESOURCES_PREFIX, orc.VCPU)),
        pcpu_key=keys.get(orc.PCPU, '%s:%s' % (RESOURCES_PREFIX, orc.PCPU)))


def hyperthreading_trait(
    specs: Mapping[str, object], props: Mapping[str, object],
) -> tuple[str | None, str]:
    """Nova's ``_get_hyperthreading_trait``: the trait's value, its key."""
    found: tuple[str, str] | None = None
    for key, raw in specs.items():
        match = _GROUP_KEY_RE.fullmatch(key)
        if (not match or match.group(1) != TRAIT_PREFIX or
                match.group(3) != HYPERTHREADING_TRAIT):
            continue
        value = values.parse_enum(key, raw, (TRAIT_REQUIRED, TRAIT_FORBIDDEN))
        if found is None:
            found = (key, value)
        elif found[1] != value:
            # NOTE: Nova takes whichever key it meets first.
            raise values.conflict(
                key, value, found[0], found[1],
                'a trait cannot be both required and forbidden')
    if found is not None:
        return found[1], found[0]
    traits = props.get(TRAITS_REQUIRED_PROP) or ()
    if not isinstance(traits, (list, tuple, set, frozenset)):
        raise values.invalid(TRAITS_REQUIRED_PROP, traits,
                             'must be a list of trait names')
    if HYPERTHREADING_TRAIT in traits:
        return TRAIT_REQUIRED, TRAITS_REQUIRED_PROP
    return None, ''
