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

"""Configuration options of nova-emulator-threads.

Laid out as ``nova.conf`` is: one module per option group, each with
``register_opts(conf)`` and ``list_opts()``, and ``opts.list_opts()`` for
``oslo-config-generator`` (entry point ``oslo.config.opts``). The options
are registered on oslo.config's global ``CONF``, which is the object Nova
itself reads, so they live in the same ``nova.conf`` file as Nova's.
"""

from oslo_config import cfg

from nova_emulator_threads.conf import emulator_threads

CONF = cfg.CONF

emulator_threads.register_opts(CONF)
