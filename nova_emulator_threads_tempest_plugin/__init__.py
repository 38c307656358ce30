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

"""Tempest plugin for nova-emulator-threads.

Registered through the ``tempest.test_plugins`` entry point. Its tests
drive only the public Compute, Placement and Image APIs, then check the
compute host: the guest's libvirt XML, and the real affinity of its
threads through ``nova-emulator-threads audit``. The host-side checks
need the libvirt URI of each compute host (``[emulator_threads]
libvirt_uris``); for hosts without one they are skipped, saying so.
"""
