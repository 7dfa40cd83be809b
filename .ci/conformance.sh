#!/usr/bin/env bash
# The official MCP conformance suite (npm @modelcontextprotocol/conformance, pinned in
# tests/conformance/package.json) against the real release binary over Streamable HTTP: the
# default server suite and the 2026-07-28 requirement set, each checked against its baseline
# of expected failures (tests/conformance/expected-failures*.yaml), which lists only scenarios
# that need the suite's own fixture tools, prompts or resources. The suite needs Node >= 22:
# the npm registry's `node` package brings it, whatever the machine's node is.
# Usage: .ci/conformance.sh (after `cargo build --release`; .ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/target/release/webhook-mcp"
[ -x "$bin" ] || { echo "build first: cargo build --release"; exit 1; }
(cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
export PATH="$PWD/tests/conformance/node_modules/.bin:$PATH"
echo "node $(node --version) for the conformance suite"

data=$(mktemp -d)
log="$data/server.log"
WEBHOOK_MCP_LOG=info "$bin" serve --http 127.0.0.1:0 --no-receiver --data-dir "$data/store" 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
port=""
for _ in $(seq 100); do
    port=$(grep 'MCP over Streamable HTTP' "$log" | grep -oE '127\.0\.0\.1:[0-9]+' | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "the server did not start:"; cat "$log"; exit 1; }
url="http://127.0.0.1:${port}/mcp"
out=target/conformance
rm -rf "$out"
status=0
echo "== conformance: default server suite against $url"
conformance server --url "$url" --expected-failures tests/conformance/expected-failures.yaml \
    -o "$out/default" || status=1
echo "== conformance: --requirements 2026-07-28 against $url"
conformance server --url "$url" --requirements 2026-07-28 \
    --expected-failures tests/conformance/expected-failures.2026-07-28.yaml \
    -o "$out/2026-07-28" || status=1
exit "$status"
