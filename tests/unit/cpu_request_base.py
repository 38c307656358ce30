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

"""Helpers of the request parser's tests: example flavors, a parse call,
and a base class that asserts how a request is refused."""

from typing import Any

from nova_emulator_threads import cpu_request
from nova_emulator_threads import exception
from tests.unit import base

DEDICATED = {'hw:cpu_policy': 'dedicated'}
ISOLATE = {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'}


def parse(specs: dict[str, str] | None = None,
          props: dict[str, Any] | None = None, vcpus: int = 4,
          memory_mb: int = 2048) -> cpu_request.CPURequest:
    return cpu_request.parse_request(vcpus, memory_mb, specs, props)


class TestCase(base.TestCase):
    """Unit tests of the request parser, with its assertion."""

    def assertRejected(self, exc_class: type[exception.Invalid],
                       names: list[tuple[str, Any]],
                       specs: dict[str, str] | None = None,
                       props: dict[str, Any] | None = None,
                       vcpus: int = 4, memory_mb: int = 2048) -> str:
        """Assert one sentence that names each (key, value) in ``names``."""
        exc = self.assertRaises(exc_class, parse, specs, props, vcpus,
                                memory_mb)
        message = str(exc)
        for key, value in names:
            self.assertIn('%s=%r' % (key, value), message)
        self.assertNotIn('\n', message)
        self.assertTrue(message.endswith('.'), message)
        return message
