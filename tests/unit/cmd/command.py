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

"""The installed ``nova-emulator-threads`` command, run in a subprocess.

Most CLI tests call ``main(argv)`` in-process; these helpers are for the
tests that need the real entry point (one smoke test per command, the
hostile-input fuzz).
"""

import os
import subprocess
import sys

#: The console script pip installed next to this interpreter.
COMMAND = os.path.join(os.path.dirname(sys.executable),
                       'nova-emulator-threads')


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], capture_output=True, text=True,
                          timeout=120, check=False)
