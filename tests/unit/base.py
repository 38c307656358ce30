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

"""The base class of every unit test."""

import logging

import fixtures
from oslotest import base


class TestCase(base.BaseTestCase):
    """oslotest's test case, with the root logger given back to it.

    oslotest captures each test's output and logs (``OS_STDOUT_CAPTURE``,
    ``OS_LOG_CAPTURE``) and fails a test that runs past
    ``OS_TEST_TIMEOUT``. Importing ``nova.test`` (the differential tests
    do) runs oslo.log's setup, which adds a handler sending every record of
    the worker to the real stdout, past those fixtures: it is removed
    before each test.

    Nova's own log is captured from INFO up: its fitter logs every cell it
    tries at DEBUG, and over the thousands of cases of a differential or
    property test that is megabytes, more than one subunit packet holds
    (stestr then fails the whole run).
    """

    def setUp(self) -> None:
        root = logging.getLogger()
        for handler in root.handlers[:]:
            if (isinstance(handler, logging.StreamHandler)
                    and not isinstance(handler, logging.FileHandler)):
                root.removeHandler(handler)
        super().setUp()
        self.useFixture(fixtures.FakeLogger(name='nova', level=logging.INFO))
