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

"""Single extra-spec and image-property values, parsed as Nova parses them.

Each parser takes the key the value came from, so that its error names
the key, the value and what is allowed (``exception.InvalidExtraSpec``).
Used by ``cpu_request`` and ``cpu_request_numa``; nothing here knows what a key
means.
"""

from collections.abc import Iterable, Mapping

from oslo_utils import strutils

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields

#: Page sizes by name, as Nova encodes them (a positive value is a size in
#: KiB).
PAGE_SIZE_ALIASES = {
    'small': fields.MEMPAGES_SMALL,
    'large': fields.MEMPAGES_LARGE,
    'any': fields.MEMPAGES_ANY,
}

#: The longest digit string read as a number: no amount a flavor or an
#: image names needs more (and int() refuses more than 4300 digits with a
#: ValueError).
MAX_DIGITS = 20

#: The longest page size with units read (``1048576KiB`` has 10).
MAX_PAGE_SIZE_CHARS = 32


def one_of(values: Iterable[str]) -> str:
    return 'must be one of %s' % ', '.join(repr(v) for v in values)


def invalid(key: str, value: object, allowed: str) -> exception.Invalid:
    return exception.InvalidExtraSpec(key=key, value=value, allowed=allowed)


def conflict(key: str, value: object, other_key: str, other_value: object,
             allowed: str) -> exception.Invalid:
    return exception.ConflictingExtraSpecs(
        key=key, value=value, other_key=other_key, other_value=other_value,
        allowed=allowed)


def image_value(props: Mapping[str, object], prop: str) -> object:
    """An image property, with '' meaning unset (as Nova's getters do)."""
    value = props.get(prop)
    return None if value == '' else value


def parse_int(key: str, value: object, minimum: int) -> int:
    """A whole number (an int, or plain decimal digits), >= ``minimum``."""
    allowed = 'must be an integer of at least %d' % minimum
    if isinstance(value, bool):
        raise invalid(key, value, allowed)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith('-') else text
        # int() would also take '+1', '1_0' and non-ASCII digits.
        if not (digits.isascii() and digits.isdigit()):
            raise invalid(key, value, allowed)
        if len(digits) > MAX_DIGITS:
            raise invalid(key, value, 'must be an integer of at most %d '
                          'digits' % MAX_DIGITS)
        number = int(text)
    else:
        raise invalid(key, value, allowed)
    if number < minimum:
        raise invalid(key, value, allowed)
    return number


def parse_enum(key: str, value: object, allowed: Iterable[str]) -> str:
    """One of ``allowed``, compared exactly (as Nova does)."""
    choices = tuple(allowed)
    if not isinstance(value, str) or value not in choices:
        raise invalid(key, value, one_of(choices))
    return value


def parse_bool(key: str, value: object) -> bool:
    """Nova's extra-spec booleans (``bool_from_string``, strictly)."""
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError:
        raise invalid(key, value, 'must be a boolean such as true or '
                      'false') from None


def parse_mask(key: str, mask: object, vcpus: int) -> frozenset[int]:
    """A vCPU mask: a CPU set, or exclusions (``^0``) from all vCPUs.

    Nova reads a mask that starts with ``^`` as ``0-<vcpus - 1>,<mask>``.
    """
    if not isinstance(mask, str) or not mask.strip():
        raise invalid(key, mask, 'must name vCPUs, as ids, ranges A-B and '
                      'exclusions ^N')
    # Parse the mask as written first, so that a syntax error quotes what
    # the user wrote rather than the expanded string.
    cpus = cpuset.parse_cpu_spec(mask, key=key)
    if mask.strip().startswith('^'):
        cpus = cpuset.parse_cpu_spec('0-%d,%s' % (vcpus - 1, mask), key=key)
    return cpus


def parse_cpus(key: str, value: object) -> frozenset[int]:
    """A non-empty set of vCPU ids: a CPU range string, or a set of ints."""
    cpus: frozenset[int] = frozenset()
    if isinstance(value, str):
        cpus = cpuset.parse_cpu_spec(value, key=key)
    elif isinstance(value, (set, frozenset, list, tuple)) and all(
            isinstance(cpu, int) and not isinstance(cpu, bool) and
            0 <= cpu <= cpuset.MAX_CPU_ID for cpu in value):
        cpus = frozenset(value)
    if not cpus:
        # NOTE: Nova's API rejects an empty hw:numa_cpus.N but not an
        # empty image hw_numa_cpus entry; a guest NUMA node without vCPUs
        # is an error either way.
        raise invalid(key, value, 'must be a non-empty set of vCPU ids '
                      'from 0 to %d' % cpuset.MAX_CPU_ID)
    return cpus


def parse_page_size(key: str, value: object) -> int:
    """Nova's ``check_and_return_pages_size``: an alias, KiB, or units.

    :returns: a size in KiB, or one of the ``MEMPAGES_*`` values
    """
    if isinstance(value, str) and value in PAGE_SIZE_ALIASES:
        return PAGE_SIZE_ALIASES[value]
    allowed = ("must be 'small', 'large', 'any' or a page size in KiB or "
               "with units (such as 2048, 2MiB or 1GiB)")
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif (isinstance(value, str) and value.isascii() and value.isdigit()
          and len(value) <= MAX_DIGITS):
        size = int(value)
    elif isinstance(value, str):
        if len(value) > MAX_PAGE_SIZE_CHARS:
            # string_to_bytes' pattern backtracks: its time grows with the
            # square of the length (a second for 5,000 digits).
            raise invalid(key, value, allowed)
        try:
            size_b = int(strutils.string_to_bytes(value, return_int=True))
        except (ValueError, OverflowError):
            # OverflowError: a number so long that its float is infinite.
            raise invalid(key, value, allowed) from None
        # NOTE: Nova keeps a fraction of a KiB here and truncates it when
        # it stores the size; no real page size is a fraction of a KiB.
        if size_b % 1024:
            raise invalid(key, value, 'must be a whole number of KiB')
        size = size_b // 1024
    else:
        raise invalid(key, value, allowed)
    if size <= 0:
        # NOTE: Nova takes '0' to mean no page size; it is a mistake.
        raise invalid(key, value, 'must be a positive page size')
    return size
