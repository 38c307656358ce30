#!/usr/bin/env bash
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

# Run one test tier with stestr and end with its counts on one line:
#
#   tools/run-stestr.sh BIN NAME TEST_PATH [STESTR RUN ARGS...]
#
# prints "NAME: 12 passed, 0 failed, 1 skipped" after stestr's own output
# and, when TEST_TOTALS names a file, appends "passed failed skipped" to it
# for the Makefile's grand total. The exit status is stestr's: a suite
# that fails, or finds no test at all, fails the tier.

set -uo pipefail

bin=${1:?usage: $0 BIN NAME TEST_PATH [ARGS...]}
name=${2:?}
test_path=${3:?}
shift 3

next_stream() {
    cat .stestr/next-stream 2>/dev/null || echo none
}

before=$(next_stream)
"$bin/stestr" --test-path "$test_path" run "$@"
rc=$?
if [ "$(next_stream)" = "$before" ]; then
    # stestr stored no run (discovery failed, or no test matched): the
    # previous run's counts would be a lie.
    echo
    echo "$name: no test ran"
    [ $rc -ne 0 ] || rc=1
    exit $rc
fi

bash "$(dirname "$0")/stestr-totals.sh" "$bin" "$name"
exit $rc
