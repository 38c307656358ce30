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

"""Which ``hw:`` flavor extra spec keys exist (Nova 34 plus ours).

Nova's API refuses a ``hw:`` key none of its extra-spec validators knows
("not a known key"). The CLI must refuse the same keys, so that a typo
(``hw:cpu_emulator_thread``) does not give a plan for another flavor;
but only the API layer may import Nova, so the names of Nova's validators
are written here, as their ``name_regex`` patterns, and
``tests/unit/api/validation/test_known_keys.py`` checks that this list
is exactly the one Nova 34 and our validators register.
"""

import difflib
import re

from nova_emulator_threads import exception

#: ``name_regex`` of every ``hw:`` validator nova-api loads with the
#: extension installed (Nova's own and ``hw:cpu_emulator_threads``).
HW_KEY_PATTERNS = (
    'hw:boot_menu',
    'hw:cpu_cores',
    'hw:cpu_dedicated_mask',
    'hw:cpu_emulator_threads',
    'hw:cpu_max_cores',
    'hw:cpu_max_sockets',
    'hw:cpu_max_threads',
    'hw:cpu_policy',
    'hw:cpu_realtime',
    'hw:cpu_realtime_mask',
    'hw:cpu_sockets',
    'hw:cpu_thread_policy',
    'hw:cpu_threads',
    'hw:emulator_threads_policy',
    'hw:ephemeral_encryption',
    'hw:ephemeral_encryption_format',
    'hw:hide_hypervisor_id',
    'hw:locked_memory',
    'hw:mem_encryption',
    'hw:mem_encryption_model',
    'hw:mem_page_size',
    'hw:numa_cpus.(?P<num>\\d+)',
    'hw:numa_mem.(?P<num>\\d+)',
    'hw:numa_nodes',
    'hw:pci_numa_affinity_policy',
    'hw:pmem',
    'hw:pmu',
    'hw:redirected_usb_ports',
    'hw:serial_port_count',
    'hw:sound_model',
    'hw:tpm_model',
    'hw:tpm_secret_security',
    'hw:tpm_version',
    'hw:usb_model',
    'hw:vif_multiqueue_enabled',
    'hw:viommu_model',
    'hw:virtio_packed_ring',
    'hw:watchdog_action',
)

NAMESPACE = 'hw:'


def check_known(key: str, value: str) -> None:
    """Refuse a ``hw:`` key Nova's API would refuse as unknown.

    :raises: exception.InvalidExtraSpec naming the key and the closest
        known one
    """
    if not key.startswith(NAMESPACE):
        return
    if any(re.fullmatch(pattern, key) for pattern in HW_KEY_PATTERNS):
        return
    names = [pattern.replace(r'(?P<num>\d+)', 'N')
             for pattern in HW_KEY_PATTERNS]
    close = difflib.get_close_matches(key, names, n=1)
    raise exception.InvalidExtraSpec(
        key=key, value=value, allowed='not a known key; Nova\'s API '
        'refuses it%s' % (' (did you mean %s?)' % close[0] if close else ''))
