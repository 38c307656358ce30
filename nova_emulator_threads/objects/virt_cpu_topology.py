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

"""A guest CPU topology: sockets, cores and threads.

Mirrors Nova's ``VirtCPUTopology`` (``nova/objects/virt_cpu_topology.py``)
for one reason: ``InstanceNUMACell.cpu_topology`` still refers to it. Nova
no longer sets that field, but topologies saved by older releases carry
it, and a conversion must not drop it.
"""

from nova_emulator_threads.objects import base
from nova_emulator_threads.objects import fields


@base.EmulatorThreadsObjectRegistry.register
class VirtCPUTopology(base.ComparableObject, base.EmulatorThreadsObject):
    """The number of sockets, cores per socket and threads per core."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        #: Sockets.
        'sockets': fields.IntegerField(nullable=True, default=1),
        #: Cores per socket.
        'cores': fields.IntegerField(nullable=True, default=1),
        #: Threads per core.
        'threads': fields.IntegerField(nullable=True, default=1),
    }
