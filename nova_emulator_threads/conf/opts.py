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

"""Options for ``oslo-config-generator`` (entry point ``oslo.config.opts``).

``oslo-config-generator --namespace nova_emulator_threads`` calls
``list_opts()`` and writes every option of the extension with its help
text.
"""

from oslo_config import cfg

from nova_emulator_threads.conf import emulator_threads


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    return [(group, opts)
            for group, opts in emulator_threads.list_opts().items()]
