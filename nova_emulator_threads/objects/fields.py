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

"""Enums and fields of the emulator-threads data model.

The values are Nova's (``nova.objects.fields``), so converting an object
to and from Nova's is lossless.
"""

from oslo_versionedobjects import fields

# Re-exported so that users of this module find every field type here.
# The "import X as X" form (not "X = fields.X") is what lets the
# oslo_versionedobjects.mypy plugin type the objects' attributes.
from oslo_versionedobjects.fields import BooleanField as BooleanField
from oslo_versionedobjects.fields import (
    DictOfIntegersField as DictOfIntegersField)
from oslo_versionedobjects.fields import IntegerField as IntegerField
from oslo_versionedobjects.fields import (
    ListOfObjectsField as ListOfObjectsField)
from oslo_versionedobjects.fields import (
    ListOfSetsOfIntegersField as ListOfSetsOfIntegersField)
from oslo_versionedobjects.fields import ObjectField as ObjectField
from oslo_versionedobjects.fields import (
    SetOfIntegersField as SetOfIntegersField)
from oslo_versionedobjects.fields import SetOfStringsField as SetOfStringsField
from oslo_versionedobjects.fields import UUIDField as UUIDField


class BaseEnum(fields.Enum):
    """An enum whose values are the class's ``ALL`` tuple."""

    ALL: tuple[str, ...] = ()

    def __init__(self, **kwargs: object) -> None:
        super().__init__(valid_values=self.__class__.ALL, **kwargs)


class CPUEmulatorThreadsPolicy(BaseEnum):
    """Where a guest's emulator threads (and I/O threads) run."""

    # share (the default): the emulator threads float over
    # '[compute] cpu_shared_set' when it is set, else over the pCPUs of the
    # guest's own vCPUs.
    SHARE = 'share'
    # isolate: the emulator threads run on one extra dedicated pCPU,
    # reserved for this guest on the host cell of guest cell 0.
    ISOLATE = 'isolate'

    ALL = (SHARE, ISOLATE)


class CPUAllocationPolicy(BaseEnum):
    """``hw:cpu_policy``: whether vCPUs are pinned."""

    # every vCPU gets its own pCPU from '[compute] cpu_dedicated_set'.
    DEDICATED = 'dedicated'
    # no pinning: vCPUs float over '[compute] cpu_shared_set'.
    SHARED = 'shared'
    # the vCPUs in 'hw:cpu_dedicated_mask' are pinned, the rest float.
    MIXED = 'mixed'

    # Nova's order: the object hash (and so version checks against Nova's
    # objects) depends on it.
    ALL = (DEDICATED, SHARED, MIXED)


class CPUThreadAllocationPolicy(BaseEnum):
    """``hw:cpu_thread_policy``: how pinned vCPUs use SMT siblings."""

    # prefer siblings, accept any free pCPU (the default).
    PREFER = 'prefer'
    # every pinned vCPU's core must be used by no one else.
    ISOLATE = 'isolate'
    # vCPUs must be placed on siblings.
    REQUIRE = 'require'

    ALL = (PREFER, ISOLATE, REQUIRE)


class CPUEmulatorThreadsPolicyField(fields.BaseEnumField):
    AUTO_TYPE = CPUEmulatorThreadsPolicy()


class CPUAllocationPolicyField(fields.BaseEnumField):
    AUTO_TYPE = CPUAllocationPolicy()


class CPUThreadAllocationPolicyField(fields.BaseEnumField):
    AUTO_TYPE = CPUThreadAllocationPolicy()
