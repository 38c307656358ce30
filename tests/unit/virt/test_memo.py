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

"""``IdentityMemo``: values by object identity, gone with their objects."""

import gc

from nova_emulator_threads.virt import memo
from tests.unit import base


class _Object:
    pass


class TestIdentityMemo(base.TestCase):

    def test_value_of_the_very_object(self) -> None:
        values: memo.IdentityMemo[int] = memo.IdentityMemo()
        first, second = _Object(), _Object()
        values.put(first, 1)
        self.assertEqual(1, values.get(first))
        self.assertIsNone(values.get(second))

    def test_entry_goes_with_its_object(self) -> None:
        values: memo.IdentityMemo[int] = memo.IdentityMemo()
        kept = _Object()
        values.put(kept, 1)
        gone = _Object()
        values.put(gone, 2)
        self.assertEqual(2, len(values))
        del gone
        gc.collect()
        self.assertEqual(1, len(values))
        self.assertEqual({id(kept)}, values.live_ids())
        self.assertEqual(0, values.dead_entries())

    def test_replaced_value(self) -> None:
        values: memo.IdentityMemo[int] = memo.IdentityMemo()
        obj = _Object()
        values.put(obj, 1)
        values.put(obj, 2)
        self.assertEqual(2, values.get(obj))
        self.assertEqual(1, len(values))
        del obj
        self.assertEqual(0, len(values))
