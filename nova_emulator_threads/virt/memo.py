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

"""What was derived from objects, remembered for as long as they live.

For objects the engine cannot keep it on: Nova's ``NUMATopology``
objects (the engine's own topology objects keep theirs in their
``derived`` field). Keyed on identity, not value: equal topologies whose
sets were built differently iterate differently (see
``topology.HostCell``), and hashing them would cost more than the memo
saves. An entry goes when its object does: a weak reference's callback
removes it, and runs before the object's id can be reused.

Each entry is one object, the weak reference itself, carrying its key and
value: a scheduler keeps an entry for every host, and Python's
garbage collector walks every container object that stays alive, so
fewer objects an entry is a shorter full collection (which would
otherwise cost a first request over many hosts more than its filtering).

Threads: the dict is only read, set and popped one key at a time, each a
single operation under the GIL, and an entry is complete before it is
stored. Two threads that miss on the same object both derive the value
and the last one stays; both values are equal.
"""

import weakref
from typing import Any, Generic, TypeVar

_Value = TypeVar('_Value')


class _Entry(weakref.ref):  # type: ignore[type-arg]
    __slots__ = ('key', 'value', 'entries')

    def __new__(cls, obj: Any, key: int, value: Any,
                entries: dict[int, '_Entry']) -> '_Entry':
        entry: _Entry = super().__new__(cls, obj, _forget)
        return entry

    def __init__(self, obj: Any, key: int, value: Any,
                 entries: dict[int, '_Entry']) -> None:
        super().__init__(obj, _forget)  # type: ignore[call-arg]
        self.key = key
        self.value = value
        self.entries = entries


def _forget(entry: _Entry) -> None:
    entry.entries.pop(entry.key, None)


class IdentityMemo(Generic[_Value]):
    """A value derived from each object, for as long as it lives."""

    __slots__ = ('_entries',)

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}

    def get(self, obj: Any) -> _Value | None:
        entry = self._entries.get(id(obj))
        if entry is not None and entry() is obj:
            value: _Value = entry.value
            return value
        return None

    def put(self, obj: Any, value: _Value) -> None:
        key = id(obj)
        self._entries[key] = _Entry(obj, key, value, self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def live_ids(self) -> set[int]:
        """The ids of the objects whose entries are still held."""
        return {key for key, entry in list(self._entries.items())
                if entry() is not None}

    def dead_entries(self) -> int:
        """Entries held for objects already gone (always 0)."""
        return sum(1 for entry in list(self._entries.values())
                   if entry() is None)
