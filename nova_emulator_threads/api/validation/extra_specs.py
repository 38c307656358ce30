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

"""Flavor extra-spec validators: ``hw:cpu_emulator_threads``.

Loaded by nova-api through the ``nova.api.extra_spec_validators``
entry-point namespace (name ``emulator_threads``), exactly as Nova loads
its own ``hw`` validators. Nova rejects unknown keys in any namespace a
validator is registered in, and ``hw`` is Nova's: registering one more
``hw:`` key extends that namespace and leaves Nova's own ``hw:``
validators, ``hw:emulator_threads_policy`` included, untouched.

Importing this module applies the seams of ``nova_patch`` (nova-api has
no other plugin point that loads our code). If the seams are refused (an
untested Nova), ``register()`` returns nothing, so Nova rejects
``hw:cpu_emulator_threads`` as an unknown ``hw:`` key instead of
accepting a policy that nothing would honour.
"""

from nova import exception as nova_exception
from nova.api.validation.extra_specs import base

from nova_emulator_threads import cpu_request
from nova_emulator_threads import exception
from nova_emulator_threads import nova_patch
from nova_emulator_threads.objects import fields


class EmulatorThreadsValidator(base.ExtraSpecValidator):
    """Nova's validator, with an error that names the key and the value.

    Nova's enum check says ``'x' is not one of: ...`` without the key; a
    user setting several extra specs at once must see which one is wrong.
    """

    def validate(self, name: str, value: str) -> None:
        if value not in self.value['enum']:
            err = exception.InvalidExtraSpec(
                key=name, value=value,
                allowed='allowed values are %s' % ', '.join(
                    repr(v) for v in self.value['enum']))
            raise nova_exception.ValidationError(detail=str(err))
        super().validate(name, value)


EMULATOR_THREADS = EmulatorThreadsValidator(
    name=cpu_request.EMULATOR_THREADS_KEY,
    description=(
        'Where the emulator threads of the guest (the QEMU threads that are '
        'not vCPUs: the main loop, I/O threads and the vhost threads that '
        'follow them) run. Requires ``hw:cpu_policy=dedicated`` or '
        '``hw:cpu_policy=mixed``. '
        'If ``share``, they float over the host\'s ``[compute] '
        'cpu_shared_set`` when it is configured, else over the host CPUs '
        'of the guest\'s own pinned vCPUs. '
        'If ``isolate``, one more dedicated host CPU is reserved for them '
        'on the host NUMA node of guest NUMA node 0 and claimed in '
        'placement (``PCPU`` = vCPUs + 1). '
        '``hw:emulator_threads_policy`` is accepted as an alias; setting '
        'both with different values is rejected when a server is created. '
        'Only supported by the ``emulator_threads.LibvirtDriver`` compute '
        'driver.'
    ),
    value={
        'type': str,
        'description': 'The emulator threads policy.',
        'enum': list(fields.CPUEmulatorThreadsPolicy.ALL),
    },
)


def register() -> list[base.ExtraSpecValidator]:
    """Return our validators, for ``nova.api.extra_spec_validators``."""
    if not nova_patch.apply():
        return []
    return [EMULATOR_THREADS]


# Nova imports every validator module before it calls any ``register()``;
# applying the seams at import time means they are in force in nova-api as
# soon as the API can accept our extra spec.
nova_patch.apply()
