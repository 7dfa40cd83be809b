#!/usr/bin/env bash
# The test command: every test (real binary, real stdio and TCP, real SQLite files, the Python
# MCP SDK, PostgreSQL when WEBHOOK_MCP_TEST_DATABASE_URL is set), then one total line.
# Extra arguments go to `cargo test` (e.g. `./test.sh --test retention`).
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p target
cargo test --release --no-fail-fast "$@" 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "${passed} passed, ${failed} failed"
exit "$status"
