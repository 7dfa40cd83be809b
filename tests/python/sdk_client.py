"""The official Python MCP SDK as a third-party client of the real webhook-mcp binary.

Usage: sdk_client.py BINARY DATA_DIR MODE   (MODE: legacy | auto)

Lists tools, creates an inbound webhook, subscribes (resources/subscribe in legacy mode,
subscriptions/listen in the default mode), POSTs a signed event to the receiver, waits for the
resources/updated notification, and reads the event back as a resource. Prints one JSON line
with what it saw; exits non-zero on any failure.
"""

import hashlib
import hmac
import json
import sys
import urllib.request
import warnings

import anyio
from mcp import Client, StdioServerParameters
from mcp.shared.subscriptions import ResourceUpdated

warnings.simplefilter("ignore")  # the legacy subscribe API is deprecated on purpose

EXPECTED_TOOLS = {
    "create_webhook", "list_webhooks", "get_webhook", "update_webhook", "delete_webhook",
    "rotate_secret", "test_webhook", "query_deliveries", "list_events", "get_event",
    "wait_for_events", "list_event_types", "send_event", "redeliver",
}


def post_signed(url: str, secret: str, payload: dict) -> dict:
    body = json.dumps(payload, separators=(",", ":")).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Webhook-Signature": sig},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200, resp.status
        return json.loads(resp.read())


async def main(binary: str, data_dir: str, mode: str) -> None:
    updated: list[str] = []
    arrived = anyio.Event()

    async def on_message(message) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            updated.append(message.params.uri)
            arrived.set()

    params = StdioServerParameters(
        command=binary,
        args=["serve", "--data-dir", data_dir, "--receiver-addr", "127.0.0.1:0"],
        env={"WEBHOOK_MCP_LOG": "warn"},
    )
    async with Client(params, mode=mode, message_handler=on_message) as client:
        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        missing = EXPECTED_TOOLS - names
        assert not missing, f"missing tools: {missing}"

        created = await client.call_tool("create_webhook", {"direction": "inbound", "description": f"python {mode}"})
        assert not created.is_error, created
        hook = created.structured_content["webhook"]
        payload = {"id": f"py-{mode}", "event": "message_received", "data": {"lastMessage": "from python"}}

        if mode == "legacy":
            await client.subscribe_resource("webhook://events")
            ack = await anyio.to_thread.run_sync(post_signed, hook["url"], hook["secret"], payload)
            with anyio.fail_after(10):
                await arrived.wait()
        else:
            async with client.listen(resource_subscriptions=["webhook://events"], resources_list_changed=True) as sub:
                ack = await anyio.to_thread.run_sync(post_signed, hook["url"], hook["secret"], payload)
                with anyio.fail_after(10):
                    async for event in sub:
                        if isinstance(event, ResourceUpdated):
                            updated.append(event.uri)
                            break

        assert "webhook://events" in updated, updated
        event_id = ack["event_id"]
        read = await client.read_resource(f"webhook://events/{event_id}")
        event = json.loads(read.contents[0].text)
        assert event["untrusted_payload"]["payload"]["data"]["lastMessage"] == "from python", event
        feed = json.loads((await client.read_resource("webhook://events")).contents[0].text)
        assert feed["events"][0]["id"] == event_id
        templates = await client.list_resource_templates()
        assert len(templates.resource_templates) == 3

        bad = await client.call_tool("get_webhook", {"id": "missing"})
        assert bad.is_error

        print(json.dumps({
            "mode": mode,
            "protocol_version": client.protocol_version,
            "tools": len(names),
            "updated": updated,
            "event_id": event_id,
        }))


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
