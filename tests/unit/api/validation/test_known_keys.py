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

"""``extra_spec_keys`` lists exactly the ``hw:`` keys nova-api knows."""

from nova.api.validation.extra_specs import validators as nova_validators
from oslotest import base

from nova_emulator_threads import exception
from nova_emulator_threads import extra_spec_keys


class TestKnownKeys(base.BaseTestCase):

    def test_same_as_nova_validators(self) -> None:
        # Nova's loader reads every 'nova.api.extra_spec_validators' entry
        # point, ours included (the package is installed).
        nova_validators.load_validators()
        registered = sorted(
            validator.name_regex
            for name, validator in nova_validators.VALIDATORS.items()
            if name.startswith(extra_spec_keys.NAMESPACE))
        self.assertEqual(registered,
                         sorted(extra_spec_keys.HW_KEY_PATTERNS))

    def test_typo_refused_with_suggestion(self) -> None:
        exc = self.assertRaises(exception.InvalidExtraSpec,
                                extra_spec_keys.check_known,
                                'hw:cpu_polcy', 'dedicated')
        self.assertEqual("Invalid hw:cpu_polcy='dedicated': not a known "
                         "key; Nova's API refuses it (did you mean "
                         "hw:cpu_policy?).", str(exc))

    def test_numbered_and_other_namespaces(self) -> None:
        extra_spec_keys.check_known('hw:numa_cpus.12', '0')
        extra_spec_keys.check_known('trait:CUSTOM_X', 'required')
