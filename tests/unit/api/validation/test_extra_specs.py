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

"""The ``hw:cpu_emulator_threads`` extra-spec validator."""

import ddt
import fixtures
from nova import exception as nova_exception
from nova.api.validation.extra_specs import base as nova_base
from nova.api.validation.extra_specs import validators as nova_validators
from stevedore import extension

from nova_emulator_threads.api.validation import extra_specs
from tests.unit import base
from tests.unit import nova_patch_fixture


class TestRegister(base.TestCase):

    def test_registers_our_key(self) -> None:
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=False))
        (validator,) = extra_specs.register()
        self.assertIsInstance(validator, nova_base.ExtraSpecValidator)
        self.assertEqual('hw:cpu_emulator_threads', validator.name)
        self.assertEqual(['share', 'isolate'], validator.value['enum'])
        self.assertIn('isolate', validator.description)
        # register() applies the seams: the key is honoured where it is
        # accepted.
        self.assertTrue(extra_specs.nova_patch.is_applied())

    def test_nothing_registered_when_the_seams_are_refused(self) -> None:
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=False))
        self.useFixture(fixtures.MockPatch(
            'nova_emulator_threads.nova_patch.installed_nova_version',
            return_value='36.0.0'))
        self.assertEqual([], extra_specs.register())
        self.assertFalse(extra_specs.nova_patch.is_applied())

    def test_entry_point(self) -> None:
        # Installed as Nova loads validators (stevedore namespace).
        manager = extension.ExtensionManager(
            'nova.api.extra_spec_validators', invoke_on_load=False)
        self.assertIs(extra_specs, manager['emulator_threads'].plugin)


@ddt.ddt
class TestValidate(base.TestCase):

    @ddt.data('share', 'isolate')
    def test_values(self, value: str) -> None:
        # No exception is the assertion: validate() raises on a bad value.
        self.assertIsNone(extra_specs.EMULATOR_THREADS.validate(
            'hw:cpu_emulator_threads', value))

    @ddt.data('isolated', 'SHARE', '', 'share ')
    def test_bad_value_names_key_value_and_allowed(self, value: str) -> None:
        exc = self.assertRaises(
            nova_exception.ValidationError,
            extra_specs.EMULATOR_THREADS.validate,
            'hw:cpu_emulator_threads', value)
        self.assertEqual(
            "Invalid hw:cpu_emulator_threads=%r: allowed values are "
            "'share', 'isolate'." % value, exc.format_message())

    def test_nova_validates_through_us(self) -> None:
        # Nova's own registry, as nova-api loaded it: our key is known and
        # checked, its hw: siblings still are, unknown hw: keys are not.
        nova_validators.validate('hw:cpu_emulator_threads', 'isolate')
        self.assertRaises(nova_exception.ValidationError,
                          nova_validators.validate,
                          'hw:cpu_emulator_threads', 'bogus')
        nova_validators.validate('hw:emulator_threads_policy', 'share')
        self.assertRaises(nova_exception.ValidationError,
                          nova_validators.validate,
                          'hw:emulator_threads_policy', 'bogus')
        self.assertRaises(nova_exception.ValidationError,
                          nova_validators.validate, 'hw:no_such_key', 'x')
