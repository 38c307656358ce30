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
``add_parser(subparsers)`` (which sets ``func`` to its ``run(args) -> int``).
Every error a user can cause is an ``EmulatorThreadsException``: it is
printed as one line on stderr and the command exits with status 2, never
with a traceback.
"""

import argparse
import importlib
import sys
import typing
from collections.abc import Sequence

from nova_emulator_threads import exception

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = ('plan', 'audit', 'pin', 'measure', 'exporter')

#: Exit status for errors (0 and 1 are the subcommands' own results).
EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        # argparse prints usage plus the message; keep it to one line.
        self.exit(EXIT_ERROR, '%s: error: %s\n' % (self.prog, message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog='nova-emulator-threads',
        description='Plan, audit, pin and measure the emulator threads of '
                    'QEMU/KVM guests on OpenStack Nova compute hosts.')
    subparsers = parser.add_subparsers(
        dest='command', required=True, parser_class=_Parser)
    for name in SUBCOMMANDS:
        module = importlib.import_module(
            'nova_emulator_threads.cmd.%s' % name)
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except exception.EmulatorThreadsException as exc:
        print('nova-emulator-threads %s: %s' % (args.command, exc),
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print('nova-emulator-threads %s: interrupted' % args.command,
              file=sys.stderr)
        return EXIT_ERROR
    return result


if __name__ == '__main__':
    sys.exit(main())
