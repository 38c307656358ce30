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

"""The physical networks a host NUMA cell has affinity to.

Mirrors Nova's ``NetworkMetadata`` (``nova/objects/network_metadata.py``)
because Nova's libvirt driver sets one on every host ``NUMACell``: without
it a host topology would not survive a round trip through our objects.
"""

from nova_emulator_threads.objects import base
from nova_emulator_threads.objects import fields


@base.EmulatorThreadsObjectRegistry.register
class NetworkMetadata(base.ComparableObject, base.EmulatorThreadsObject):
    """Aggregate metadata of a collection of networks."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        #: Names of the physical networks (``provider:physical_network``).
        'physnets': fields.SetOfStringsField(),
        #: Whether L3 (tunneled) networks are among them.
        'tunneled': fields.BooleanField(),
    }
