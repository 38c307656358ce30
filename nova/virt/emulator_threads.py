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

"""Compute driver shim: ``compute_driver = emulator_threads.LibvirtDriver``.

Nova imports compute drivers only as ``nova.virt.<compute_driver>``, so
this one module is installed into Nova's own ``nova/virt/`` directory.
It only re-exports the driver; the code lives in
``nova_emulator_threads.virt.libvirt.driver``. The distribution never
ships ``nova/__init__.py`` or ``nova/virt/__init__.py``: Nova's own
files stay Nova's.
"""

from nova_emulator_threads.virt.libvirt import driver

LibvirtDriver = driver.LibvirtDriver

__all__ = ['LibvirtDriver']
