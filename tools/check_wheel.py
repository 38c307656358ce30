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

"""Check that a built wheel holds what an operator's install needs.

    python tools/check_wheel.py dist/nova_emulator_threads-*.whl

The development venv uses an editable install, which reads the tree and
so cannot show what the wheel is missing. This looks inside the wheel:
every module and bundled host XML of the package and the tempest plugin,
the compute driver shim as the only file under ``nova/`` (never Nova's
own ``__init__.py``), the typing marker, the entry points and the pins
Nova needs. It prints one line per problem and exits 1 if there is any.
"""

import configparser
import pathlib
import sys
import zipfile
from collections.abc import Iterator

TREE = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = 'nova_emulator_threads'
TEMPEST_PLUGIN = 'nova_emulator_threads_tempest_plugin'
SHIM = 'nova/virt/emulator_threads.py'

ENTRY_POINTS = {
    'console_scripts': {
        'nova-emulator-threads': 'nova_emulator_threads.cmd.main:main'},
    'oslo.config.opts': {
        'nova_emulator_threads':
            'nova_emulator_threads.conf.opts:list_opts'},
    'nova.api.extra_spec_validators': {
        'emulator_threads':
            'nova_emulator_threads.api.validation.extra_specs'},
    'tempest.test_plugins': {
        'nova-emulator-threads': 'nova_emulator_threads_tempest_plugin.'
                                 'plugin:EmulatorThreadsTempestPlugin'},
}

REQUIREMENTS = ('nova==34.*', 'sqlalchemy<2.1')


def tree_files() -> Iterator[str]:
    """The package's files that must ship: modules, host XML, marker."""
    paths = [*(TREE / PACKAGE).rglob('*'), *(TREE / TEMPEST_PLUGIN).rglob('*')]
    for path in sorted(paths):
        if '__pycache__' in path.parts or not path.is_file():
            continue
        if path.suffix in ('.py', '.xml') or path.name == 'py.typed':
            yield path.relative_to(TREE).as_posix()
    yield SHIM


def problems(wheel_path: pathlib.Path) -> Iterator[str]:
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        dist_info = {n.split('/', 1)[0] for n in names
                     if n.split('/', 1)[0].endswith('.dist-info')}
        if len(dist_info) != 1:
            yield 'expected one .dist-info directory, found %s' % (
                sorted(dist_info) or 'none')
            return
        meta = dist_info.pop()
        entry_points_txt = wheel.read(meta + '/entry_points.txt').decode()
        metadata = wheel.read(meta + '/METADATA').decode()

    for name in tree_files():
        if name not in names:
            yield 'missing from the wheel: %s' % name

    foreign = sorted(n for n in names
                     if n.startswith('nova/') and n != SHIM)
    for name in foreign:
        yield ('the wheel must add only %s to Nova, but also has %s'
               % (SHIM, name))

    entry_points = configparser.ConfigParser(delimiters=('=',))
    entry_points.optionxform = str  # type: ignore[assignment,method-assign]
    entry_points.read_string(entry_points_txt)
    for group, expected in ENTRY_POINTS.items():
        for key, target in expected.items():
            found = entry_points.get(group, key, fallback=None)
            if found != target:
                yield ('entry point %s %s is %r, expected %r'
                       % (group, key, found, target))

    requires = {line.split(':', 1)[1].strip().lower().replace(' ', '')
                for line in metadata.splitlines()
                if line.startswith('Requires-Dist:')}
    for requirement in REQUIREMENTS:
        if requirement not in requires:
            yield 'Requires-Dist %s is missing' % requirement


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print('usage: %s WHEEL' % argv[0], file=sys.stderr)
        return 2
    wheel_path = pathlib.Path(argv[1])
    found = list(problems(wheel_path))
    for problem in found:
        print('check-wheel: %s' % problem)
    if found:
        return 1
    print('check-wheel: %s has the package, its data, the driver shim '
          'and its entry points' % wheel_path.name)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
