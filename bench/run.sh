#!/usr/bin/env bash
# Builds in release mode and runs every benchmark, printing the tables for BENCHMARKS.md.
# Loopback only. Needs node and npm for the Express baseline (skipped without them) and wrk for
# the ingest load (Debian's package; installed here when run as root, else the harness falls back
# to its own generator and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } || true
fi
cargo build --release --benches --quiet
echo "# webhook-mcp benchmarks — $(date -u +%Y-%m-%d), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -srm)"
echo
cargo bench --quiet --bench receiver -- "${REQUESTS:-5000}"
echo
echo "## Outbound deliveries"
echo
cargo bench --quiet --bench delivery -- 200 50 64
echo
echo "## Delivery log at scale"
echo
cargo bench --quiet --bench store -- 1000000
echo
echo "## Many instances"
echo
# 150000 events per ingest row: at 15000 a row lasts about a second (BENCHMARKS.md, session 18).
cargo bench --quiet --bench cluster -- 150000
