"""Every tool's outputSchema, checked by third-party code: the official Python MCP SDK (which
validates each result's structuredContent against the tool's outputSchema) and the `jsonschema`
library, driving the real binary over stdio. Also lints every input and output schema for the
constructs strict MCP clients reject (a `type` that is a list, an array without `items`, a
bare boolean schema).

Usage: output_schemas.py BINARY DATA_DIR
Prints one JSON line: {"called": [...tools...], "lint": [...findings...]}; exits non-zero on
any failure.
"""

import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import anyio
import jsonschema
from mcp import Client, StdioServerParameters


class Sink(BaseHTTPRequestHandler):
    """A subscriber: the first request gets 500, the rest 200."""
    hits = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Sink.hits += 1
        self.send_response(500 if Sink.hits == 1 else 200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def lint(schema, path, findings):
    if isinstance(schema, bool):
        findings.append(f"{path}: a bare boolean schema")
        return
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("type"), list):
        findings.append(f"{path}: type is a list {schema['type']}")
    if schema.get("type") == "array" and "items" not in schema:
        findings.append(f"{path}: array without items")
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions"):
            for name, sub in value.items():
                lint(sub, f"{path}.{key}.{name}", findings)
        elif key in ("items", "additionalProperties") and isinstance(value, (dict, bool)):
            if key == "additionalProperties" and isinstance(value, bool):
                continue
            lint(value, f"{path}.{key}", findings)
        elif key in ("anyOf", "oneOf", "allOf"):
            for i, sub in enumerate(value):
                lint(sub, f"{path}.{key}[{i}]", findings)


def post_signed(url, secret, payload):
    body = json.dumps(payload).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Webhook-Signature": sig})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def main(binary, data_dir):
    sink = HTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
    params = StdioServerParameters(
        command=binary,
        args=["serve", "--data-dir", data_dir, "--receiver-addr", "127.0.0.1:0",
              "--allow-private-targets", "--retry-schedule", "0.2"],
        env={"WEBHOOK_MCP_LOG": "warn"},
    )
    called = []
    async with Client(params) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        findings = []
        for name, tool in sorted(tools.items()):
            if tool.output_schema is None:
                findings.append(f"{name}: no outputSchema")
                continue
            jsonschema.validators.validator_for(tool.output_schema).check_schema(tool.output_schema)
            lint(tool.input_schema, f"{name}.inputSchema", findings)
            lint(tool.output_schema, f"{name}.outputSchema", findings)

        async def call(name, args):
            result = await client.call_tool(name, args)
            assert not result.is_error, f"{name} failed: {result.content}"
            out = result.structured_content
            # The SDK validated it already; say it again with the library directly.
            jsonschema.validate(out, tools[name].output_schema)
            called.append(name)
            return out

        inbound = (await call("create_webhook", {"direction": "inbound", "description": "in"}))["webhook"]
        outbound = (await call("create_webhook", {"direction": "outbound", "url": sink_url,
                                                  "headers": {"Authorization": "Bearer x"}}))["webhook"]
        await call("list_webhooks", {})
        await call("get_webhook", {"id": inbound["id"]})
        await call("update_webhook", {"id": outbound["id"], "description": "out"})
        await call("rotate_secret", {"id": inbound["id"], "grace_seconds": 60})
        secret = (await call("rotate_secret", {"id": inbound["id"], "grace_seconds": 0}))["webhook"]["secret"]
        await call("test_webhook", {"id": inbound["id"]})
        posted = post_signed(inbound["url"], secret, {"event": "message.received", "id": "e-1", "data": {"x": 1}})
        waited = await call("wait_for_events", {"after": 0, "timeout_ms": 5000})
        assert waited["count"] >= 1, waited
        await call("wait_for_events", {"timeout_ms": 100})  # nothing new: timed_out
        await call("list_events", {"after": 0})
        await call("get_event", {"id": posted["event_id"]})
        sent = await call("send_event", {"event": "lead.replied", "data": {"lead": "ada"}})
        assert sent["queued"] == 1, sent
        # First attempt 500, the retry 200: wait for the message to finish.
        delivery = None
        for _ in range(100):
            page = await call("query_deliveries", {"webhook_id": outbound["id"]})
            done = [d for d in page["deliveries"] if d["status"] == "succeeded"]
            if done:
                delivery = done[0]
                break
            time.sleep(0.1)
        assert delivery, "the outbound delivery never succeeded"
        await call("redeliver", {"delivery_id": delivery["id"]})
        await call("redeliver", {"webhook_id": outbound["id"], "since": "2020-01-01T00:00:00Z"})
        await call("test_webhook", {"id": outbound["id"]})
        await call("query_deliveries", {"direction": "inbound", "limit": 5})
        await call("list_event_types", {"provider": "voyager"})
        await call("delete_webhook", {"id": outbound["id"]})
    missing = sorted(set(tools) - set(called))
    print(json.dumps({"called": sorted(set(called)), "missing": missing, "lint": findings}))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
