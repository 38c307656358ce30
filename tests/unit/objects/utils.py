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

"""Test helpers: Nova's objects, and a field-by-field object comparison.

Test-only: the package never imports Nova outside its integration layers.
"""

import warnings
from typing import Any

import testtools
from oslo_versionedobjects import base as ovo_base

with warnings.catch_warnings():
    # Importing Nova pulls in eventlet, which warns that it is deprecated.
    warnings.simplefilter('ignore')
    from nova import objects as nova_objects
    from nova.virt import hardware as nova_hardware

nova_objects.register_all()

__all__ = [
    'assert_objects_equal',
    'nova_hardware',
    'nova_objects',
]


def assert_objects_equal(
    test: testtools.TestCase, expected: ovo_base.VersionedObject,
    actual: ovo_base.VersionedObject, path: str = '',
) -> None:
    """Assert two objects hold the same data, whichever project's they are.

    Compares name, version, which fields are set, and their values, down
    the tree. Nova's instance objects have no ``__eq__``, and comparing
    primitives would compare the order sets happen to iterate in.
    """
    path = path or expected.obj_name()
    test.assertEqual(expected.obj_name(), actual.obj_name(), path)
    test.assertEqual(expected.VERSION, actual.VERSION, path)
    test.assertEqual(sorted(expected.fields), sorted(actual.fields), path)
    for name in expected.fields:
        where = f'{path}.{name}'
        is_set = expected.obj_attr_is_set(name)
        test.assertEqual(is_set, actual.obj_attr_is_set(name), where)
        if not is_set:
            continue
        _assert_values_equal(test, getattr(expected, name),
                             getattr(actual, name), where)


def _assert_values_equal(test: testtools.TestCase, expected: Any,
                         actual: Any, path: str) -> None:
    if isinstance(expected, ovo_base.VersionedObject):
        test.assertIsInstance(actual, ovo_base.VersionedObject, path)
        assert_objects_equal(test, expected, actual, path)
    elif isinstance(expected, list):
        test.assertIsInstance(actual, list, path)
        test.assertEqual(len(expected), len(actual), path)
        for i, (item, other) in enumerate(zip(expected, actual, strict=True)):
            _assert_values_equal(test, item, other, f'{path}[{i}]')
    else:
        test.assertEqual(type(expected), type(actual), path)
        test.assertEqual(expected, actual, path)
