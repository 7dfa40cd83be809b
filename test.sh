#!/usr/bin/env bash
# The test command: every test (real binary, real stdio and TCP, real SQLite files, the Python
# MCP SDK, PostgreSQL when WEBHOOK_MCP_TEST_DATABASE_URL is set), then one total line.
# Extra arguments go to `cargo test` (e.g. `./test.sh --test retention`).
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p target
# A hung test must fail the run with a clear line, not eat CI's whole budget: one deadline for the
# build and the suite together (about 15 minutes on 2 cores from a cold cache).
limit="${WEBHOOK_MCP_TEST_TIMEOUT:-2700}"
timeout --kill-after=30 "$limit" cargo test --release --no-fail-fast "$@" 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "TIMEOUT: the test run passed its ${limit}s deadline (WEBHOOK_MCP_TEST_TIMEOUT); the test still running above is the hung one" | tee -a target/test-output.txt
fi
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
timed_out=$([ "$status" = 124 ] || [ "$status" = 137 ] && echo 1 || echo 0)
failed=$((failed + timed_out))
echo "${passed} passed, ${failed} failed"
exit "$status"
