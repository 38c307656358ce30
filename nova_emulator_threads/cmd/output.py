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

"""Output of every ``nova-emulator-threads`` command: one home for it.

A command builds its result as data (a JSON-able mapping, which is an
interface: keys are only ever added) and hands it to ``emit`` with a
function that renders it as a table for people. ``-f/--format`` and
``-c/--column`` work as in ``openstack``:

* ``table`` (default): the command's own layout; with ``-c``, a two-column
  table of the chosen keys;
* ``json`` / ``yaml``: the object (only the chosen keys with ``-c``);
* ``value``: the chosen keys' values, one a line, for shell scripts.

Everything goes to stdout through ``write``, which turns a write error
(a full disk, a reader that went away as in ``| head``) into
``OutputError``, so that it ends the command with exit status 2 and one
line on stderr like every other error.
"""

import argparse
import json
import sys
import typing
from collections.abc import Callable, Mapping, Sequence

# PyYAML (a Nova dependency) ships no type hints.
import yaml  # type: ignore[import-untyped]

from nova_emulator_threads import exception

FORMATS = ('table', 'json', 'yaml', 'value')

Data = Mapping[str, typing.Any]


class OutputError(exception.EmulatorThreadsException):
    """Standard output cannot be written."""

    msg_fmt = 'cannot write the output: %(reason)s'


def add_arguments(parser: argparse.ArgumentParser,
                  short_column: bool = True) -> None:
    """``-f/--format`` and ``-c/--column``, as ``openstack`` has them.

    :param short_column: False for commands that read a libvirt daemon,
        where ``-c`` is ``--connect`` as for ``virsh``; ``--column`` then
        has no short form
    """
    group = parser.add_argument_group('output formatters')
    group.add_argument(
        '-f', '--format', choices=FORMATS, default='table',
        help='the output format (default: table); json and yaml print the '
             'result object, value its values one a line')
    group.add_argument(
        *(('-c', '--column') if short_column else ('--column',)),
        action='append', default=[], metavar='COLUMN',
        dest='columns',
        help='print only this key of the result (repeat for several)')


def select(data: Data, columns: Sequence[str]) -> Data:
    """The keys ``-c`` asks for, in the order asked.

    :raises: exception.Invalid for a key the result does not have
    """
    if not columns:
        return data
    unknown = [column for column in columns if column not in data]
    if unknown:
        raise exception.Invalid(
            reason='-c/--column %r is not a column of this output; the '
                   'columns are: %s' % (unknown[0], ', '.join(sorted(data))))
    return {column: data[column] for column in columns}


def render(data: Data, fmt: str, columns: Sequence[str],
           table: Callable[[Data], str]) -> str:
    """The text of ``data`` in format ``fmt`` (without a final newline)."""
    chosen = select(data, columns)
    if fmt == 'json':
        return json.dumps(chosen, indent=2, sort_keys=not columns)
    if fmt == 'yaml':
        text: str = yaml.safe_dump(_plain(chosen), sort_keys=not columns,
                                   default_flow_style=False)
        return text.rstrip('\n')
    if fmt == 'value':
        return '\n'.join(_scalar(value) for value in chosen.values())
    if columns:
        width = max(len(key) for key in chosen)
        return '\n'.join('%s  %s' % (key.ljust(width), _scalar(value))
                         for key, value in chosen.items())
    return table(data)


def emit(args: argparse.Namespace, data: Data,
         table: Callable[[Data], str]) -> None:
    """Print a command's result as ``-f`` and ``-c`` say."""
    write(render(data, args.format, args.columns, table) + '\n')


def write(text: str) -> None:
    """Write to stdout; a failing write is an ``OutputError``."""
    try:
        sys.stdout.write(text)
    except OSError as exc:
        raise OutputError(reason=exc.strerror or str(exc)) from None


def flush() -> None:
    """Flush stdout (where a buffered write error shows)."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        raise OutputError(reason=exc.strerror or str(exc)) from None


def _scalar(value: typing.Any) -> str:
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _plain(value: typing.Any) -> typing.Any:
    # safe_dump knows dicts and lists, not other mappings or tuples.
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
