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

# The counts of the last stestr run of the current directory, on one line:
#
#   tools/stestr-totals.sh BIN NAME
#
# prints "NAME: 12 passed, 0 failed, 1 skipped" and, when TEST_TOTALS names
# a file, appends "passed failed skipped" to it for the Makefile's grand
# total. Used after a tier's own stestr run (run-stestr.sh) and after
# `tempest run` (tools/all-in-one), which keeps an stestr repository in
# its workspace. Exits 1, saying so, when there is no run to count.

set -uo pipefail

bin=${1:?usage: $0 BIN NAME}
name=${2:?usage: $0 BIN NAME}

stats=$("$bin/stestr" last --subunit 2>/dev/null \
        | "$bin/subunit-stats" --no-passthrough)
if ! grep -q '^Total tests: *[1-9]' <<<"$stats"; then
    echo "$name: no test ran"
    exit 1
fi
count() {
    awk -v key="$1" '$1 == key && $2 == "tests:" {print $3}' <<<"$stats"
}
passed=$(count Passed)
failed=$(count Failed)
skipped=$(count Skipped)
echo "$name: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ -n "${TEST_TOTALS:-}" ]; then
    echo "${passed:-0} ${failed:-0} ${skipped:-0}" >>"$TEST_TOTALS"
fi
