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

"""The emulator-threads data model: versioned objects mirroring Nova's."""


def register_all() -> None:
    """Import every object module, which registers its objects.

    Importing a module is what registers its classes with
    ``EmulatorThreadsObjectRegistry``; like ``nova.objects.register_all()``
    this is done on demand so that ``objects.fields`` stays cheap to import.
    """
    __import__('nova_emulator_threads.objects.network_metadata')
    __import__('nova_emulator_threads.objects.numa')
    __import__('nova_emulator_threads.objects.virt_cpu_topology')
