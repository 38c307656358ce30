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

"""Hypothesis profiles of the property and fuzz tests.

``HYPOTHESIS_PROFILE`` selects one; the default is ``dev``, the light
profile of a developer's ``make unit`` or ``tox -e py3``. ``make test``
(and so ``.ci/run``) sets ``ci``, the profile ``doc/source/reliability.rst``
counts:

``dev`` (the default)
    300 examples per property, derandomized, no example database and no
    deadline: the same checks as ``ci`` on fewer examples, a quick local
    run.
``ci``
    5,000 examples per property, derandomized (the examples depend only
    on the code of the test, so a failure in CI fails the same way on a
    laptop), no example database (nothing is read from or written to the
    working tree), no deadline (a shared 2-core CI machine is not a
    benchmark; the fuzz tests set their own per-example bound).
``thorough``
    50,000 random examples: an occasional long hunt. A failure prints
    the ``@reproduce_failure`` blob to replay it.

Tests that pass ``max_examples`` themselves keep their own count.
"""

import os

import hypothesis

PROFILE_ENV = 'HYPOTHESIS_PROFILE'
DEFAULT_PROFILE = 'dev'

#: Examples per property in CI (the counts of doc/source/reliability.rst).
CI_EXAMPLES = 5000
#: Examples per property in a developer's run.
DEV_EXAMPLES = 300

hypothesis.settings.register_profile(
    'ci', max_examples=CI_EXAMPLES, derandomize=True, database=None,
    deadline=None, print_blob=True)
hypothesis.settings.register_profile(
    'dev', max_examples=DEV_EXAMPLES, derandomize=True, database=None,
    deadline=None, print_blob=True)
hypothesis.settings.register_profile(
    'thorough', max_examples=50000, derandomize=False, database=None,
    deadline=None, print_blob=True)


def profile_name() -> str:
    """The profile ``HYPOTHESIS_PROFILE`` names (``dev`` when unset)."""
    return os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE


def load() -> None:
    """Select the profile; an unknown name fails loudly (hypothesis's
    InvalidArgument lists the registered ones).
    """
    hypothesis.settings.load_profile(profile_name())
