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

"""The Debian packages of bindep.txt for some profiles, one per line.

    python3 tools/bindep_packages.py [--file bindep.txt] PROFILE...

``tools/install-deps.sh`` runs this before any virtualenv exists, so it
uses the standard library only and reads the part of bindep's format that
``bindep.txt`` uses: ``package [selector...]`` where a selector is a
profile, ``!profile``, or ``platform:NAME`` (``!platform:NAME``). A line
applies on Debian when its platform selectors allow ``dpkg`` or
``debian``, and to the chosen profiles when it has no profile selector
or one of its profiles is chosen, and none of its negated ones is, as
bindep decides. Version constraints are not used here and are refused,
like any syntax this parser does not know, rather than misread.

An unknown profile is an error (exit 2), so a typo in a caller cannot
install nothing and succeed.
"""

import argparse
import pathlib
import re
import sys
from collections.abc import Iterable, Sequence

#: The platform names a selector may use for this machine (Debian 12).
PLATFORMS = frozenset({'dpkg', 'debian'})

_LINE = re.compile(r'^(?P<name>[A-Za-z0-9][A-Za-z0-9.+_-]*)'
                   r'(?:\s+\[(?P<selectors>[^\]]*)\])?\s*$')

DEFAULT_FILE = pathlib.Path(__file__).resolve().parent.parent / 'bindep.txt'


class BindepError(Exception):
    pass


def parse(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """``(package, selectors)`` for each rule of a bindep file."""
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise BindepError('bindep.txt line %d: %r is not '
                              '"package [selector ...]"' % (number, raw))
        selectors = tuple((match.group('selectors') or '').split())
        rules.append((match.group('name'), selectors))
    return rules


def profiles(rules: Iterable[tuple[str, tuple[str, ...]]]) -> set[str]:
    """Every profile the rules name."""
    return {s.lstrip('!') for _, selectors in rules for s in selectors
            if not s.lstrip('!').startswith('platform:')}


def _applies(selectors: Sequence[str], wanted: set[str]) -> bool:
    platform = [s for s in selectors if s.lstrip('!').startswith('platform:')]
    profile = [s for s in selectors if s not in platform]
    positive_platforms = {s[len('platform:'):] for s in platform
                          if not s.startswith('!')}
    negative_platforms = {s[len('!platform:'):] for s in platform
                          if s.startswith('!')}
    if positive_platforms and not positive_platforms & PLATFORMS:
        return False
    if negative_platforms & PLATFORMS:
        return False
    positive = {s for s in profile if not s.startswith('!')}
    negative = {s[1:] for s in profile if s.startswith('!')}
    if negative & wanted:
        return False
    return not positive or bool(positive & wanted)


def packages(text: str, wanted: Iterable[str]) -> list[str]:
    """The packages of the ``wanted`` profiles, in file order, once each."""
    rules = parse(text)
    wanted = set(wanted)
    unknown = wanted - profiles(rules)
    if unknown:
        raise BindepError('unknown profile %s; bindep.txt has: %s' % (
            ', '.join(sorted(unknown)), ', '.join(sorted(profiles(rules)))))
    found: list[str] = []
    for name, selectors in rules:
        if _applies(selectors, wanted) and name not in found:
            found.append(name)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--file', type=pathlib.Path, default=DEFAULT_FILE)
    parser.add_argument('profile', nargs='+')
    args = parser.parse_args(argv)
    try:
        found = packages(args.file.read_text(), args.profile)
    except (BindepError, OSError) as exc:
        print('bindep_packages: %s' % exc, file=sys.stderr)
        return 2
    print('\n'.join(found))
    return 0


if __name__ == '__main__':
    sys.exit(main())
