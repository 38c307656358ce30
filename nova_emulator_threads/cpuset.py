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

"""CPU range strings, in Nova's syntax (``"2-15,^8"``).

Parsing accepts exactly what ``nova.virt.hardware.parse_cpu_spec`` accepts
and rejects what it rejects, but with our own exception (naming the key
and value) and with CPU ids capped at ``MAX_CPU_ID``, so a hostile
``0-99999999`` cannot make us build a set of a hundred million ints.
"""

from collections.abc import Iterable

from nova_emulator_threads import exception

#: The largest CPU id we accept. Linux's NR_CPUS is at most 8192 on every
#: architecture Nova supports, so no real host has a CPU id above this.
MAX_CPU_ID = 8191

# Digits beyond which an id is not converted at all (leading zeros allowed).
_MAX_DIGITS = 20


def _cpu_id(text: str, key: str, spec: str) -> int:
    text = text.strip()
    # int() accepts '+1', ' 1', '1_0' and unicode digits; CPU ids are plain
    # ASCII digits.
    if not text.isascii() or not text.isdigit():
        raise exception.InvalidCPUSpec(
            key=key, value=spec, maximum=MAX_CPU_ID,
            reason='%r is not a CPU id' % text)
    if len(text) > _MAX_DIGITS:
        # int() refuses more than 4300 digits with a ValueError; any CPU id
        # this long is too large anyway.
        raise exception.InvalidCPUSpec(
            key=key, value=spec, maximum=MAX_CPU_ID,
            reason='a CPU id of %d digits is too large' % len(text))
    value = int(text)
    if value > MAX_CPU_ID:
        raise exception.InvalidCPUSpec(
            key=key, value=spec, maximum=MAX_CPU_ID,
            reason='CPU id %d is too large' % value)
    return value


def parse_cpu_spec(spec: str, key: str = 'cpuset') -> frozenset[int]:
    """Parse a CPU set specification such as ``"1-4,^3,6"``.

    :param spec: the specification
    :param key: the name of the setting it came from, for error messages
    :raises: InvalidCPUSpec naming ``key`` and ``spec``
    :returns: the set of CPU ids
    """
    return frozenset(nova_ordered_cpu_set(spec, key))


def parse_cpu_set_option(spec: str, key: str) -> frozenset[int]:
    """Parse a set that must name CPUs, as Nova's ``get_cpu_shared_set``.

    Nova treats an empty option as unset but refuses a non-empty one
    that parses to no CPU (``",,,"``, ``"^0"``): so does this. Callers
    pass only values that were given.

    :raises: InvalidCPUSpec naming ``key`` and ``spec``
    """
    cpus = parse_cpu_spec(spec, key)
    if not cpus:
        raise exception.InvalidCPUSpec(
            key=key, value=spec, maximum=MAX_CPU_ID,
            reason='it names no CPU (Nova refuses it: "No CPUs available '
                   'after parsing")')
    return cpus


def nova_ordered_cpu_set(spec: str, key: str = 'cpuset') -> set[int]:
    """``parse_cpu_spec``, as a set built the way Nova builds it.

    The set comes from the same sequence of set operations as Nova's
    ``parse_cpu_spec``, so it iterates in the same order; where Nova's
    decisions follow set order (see ``virt.caps``) that matters.
    """
    if not isinstance(spec, str):
        raise exception.InvalidCPUSpec(
            key=key, value=spec, maximum=MAX_CPU_ID, reason='not a string')
    include: set[int] = set()
    exclude: set[int] = set()
    for rule in spec.split(','):
        rule = rule.strip()
        if not rule:
            continue
        target = include
        if rule[0] == '^':
            target = exclude
            rule = rule[1:]
        if '-' in rule:
            first, last = rule.split('-', 1)
            if not first.strip() or not last.strip():
                # '-1' (a negative id) or '1-': name the whole rule, not
                # the empty side of it.
                raise exception.InvalidCPUSpec(
                    key=key, value=spec, maximum=MAX_CPU_ID,
                    reason="%r is neither a CPU id nor a range 'A-B'"
                    % rule.strip())
            start = _cpu_id(first, key, spec)
            end = _cpu_id(last, key, spec)
            if start > end:
                raise exception.InvalidCPUSpec(
                    key=key, value=spec, maximum=MAX_CPU_ID,
                    reason='range %d-%d is reversed' % (start, end))
            target |= set(range(start, end + 1))
        else:
            target.add(_cpu_id(rule, key, spec))
    include -= exclude
    return include


def format_cpu_spec(cpus: Iterable[int]) -> str:
    """Format CPU ids as a range string (``{0, 1, 2, 5}`` -> ``"0-2,5"``)."""
    parts: list[str] = []
    ordered = sorted(cpus)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j == i:
            parts.append(str(ordered[i]))
        else:
            parts.append('%d-%d' % (ordered[i], ordered[j]))
        i = j + 1
    return ','.join(parts)
