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

"""``nova-emulator-threads``: the operator command.

Each subcommand lives in its own module of this package and provides
``add_parser(subparsers, parents)``: it adds its parser with ``parents``
(the options every command has: ``--config-file``), its output options
with ``cmd.output.add_arguments`` (``-f/--format``, ``-c/--column``) and
sets ``func`` to its ``run(args) -> int``. A command
is a function of its parsed arguments: it builds its result as data,
prints it with ``cmd.output.emit`` and returns its exit status.

Exit status, the same for every command:

* 0: the plan fits, the host is clean, the change is done;
* 1: the plan does not fit, the audit has findings;
* 2: bad input or an error (including a failing write to stdout), with
  one line on stderr and never a traceback.
"""

import argparse
import importlib
import os
import sys
import typing
from collections.abc import Sequence
from importlib import metadata

from nova_emulator_threads import exception
from nova_emulator_threads.cmd import nova_conf
from nova_emulator_threads.cmd import output

PROG = 'nova-emulator-threads'

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = ('plan', 'audit', 'pin', 'measure', 'exporter', 'complete')

EXIT_OK = 0
#: "Does not fit" / "findings": the command worked and says no.
EXIT_NO = 1
EXIT_ERROR = 2

EPILOG = ('exit status: 0 fits / clean / done, 1 does not fit / findings, '
          '2 bad input or an error (one line on stderr)')


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        # argparse prints usage plus the message; keep it to one line.
        self.exit(EXIT_ERROR, '%s: error: %s\n' % (self.prog, message))


def version() -> str:
    try:
        return metadata.version('nova-emulator-threads')
    except metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return 'unknown'


def common_options() -> argparse.ArgumentParser:
    """The options every command has (an argparse parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    nova_conf.add_arguments(parent)
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, epilog=EPILOG,
        description='Plan, audit, pin and measure the emulator threads of '
                    'QEMU/KVM guests on OpenStack Nova compute hosts.')
    parser.add_argument('--version', action='version',
                        version='%s %s' % (PROG, version()))
    subparsers = parser.add_subparsers(
        dest='command', required=True, parser_class=_Parser,
        metavar='COMMAND')
    parents = [common_options()]
    for name in SUBCOMMANDS:
        module = importlib.import_module(
            'nova_emulator_threads.cmd.%s' % name)
        module.add_parser(subparsers, parents)
    for choice in subparsers.choices.values():
        choice.epilog = choice.epilog or EPILOG
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        nova_conf.apply(args)
        result: int = args.func(args)
        output.flush()
    except exception.EmulatorThreadsException as exc:
        if isinstance(exc, output.OutputError):
            _drop_stdout()
        print('%s %s: %s' % (PROG, args.command, exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print('%s %s: interrupted' % (PROG, args.command), file=sys.stderr)
        return EXIT_ERROR
    return result


def _drop_stdout() -> None:
    # What could not be written stays in the buffer, and Python would try
    # again at exit and print a second error: send the rest nowhere.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == '__main__':
    sys.exit(main())
