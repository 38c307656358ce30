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

"""``nova-emulator-threads``, called in-process or run installed.

CLI tests call ``main`` here: the command's ``main(argv)`` in this
process, its output captured. ``run`` starts the console script pip
installed, in a subprocess: only the smoke test of each command uses it,
to prove the entry point works.
"""

import contextlib
import io
import os
import socket
import subprocess
import sys
from unittest import mock

from nova_emulator_threads.cmd import main as cmd_main

#: The console script pip installed next to this interpreter.
COMMAND = os.path.join(os.path.dirname(sys.executable),
                       'nova-emulator-threads')


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], capture_output=True, text=True,
                          timeout=120, check=False)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for ``exporter --listen``."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port: int = sock.getsockname()[1]
        return port


def main(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """``nova-emulator-threads ARGV`` in this process.

    :param stdin: what the command reads from its standard input
    :returns: its exit status, standard output and standard error
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if stdin is not None:
            stack.enter_context(mock.patch.object(
                sys, 'stdin', io.TextIOWrapper(io.BytesIO(stdin))))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            status = cmd_main.main(list(argv))
        except SystemExit as exc:
            # argparse's own errors (a value not among the choices).
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()
