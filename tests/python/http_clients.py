"""Three clients of one webhook-mcp over Streamable HTTP, with the official Python MCP SDK:
two legacy sessions (mode="legacy", resources/subscribe) and one 2026-07-28 client (default
mode, subscriptions/listen). One signed POST must reach each exactly once; after one legacy
session drops without saying goodbye, the others keep receiving.

Usage: http_clients.py MCP_URL TOKEN
Prints one JSON line with what each client saw.
"""

import hashlib
import hmac
import json
import sys
import urllib.request
import warnings
from contextlib import AsyncExitStack

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.subscriptions import ResourceUpdated

warnings.simplefilter("ignore")  # the legacy subscribe API is deprecated on purpose
FEED = "webhook://events"


def post_signed(url: str, secret: str, payload: dict) -> dict:
    body = json.dumps(payload, separators=(",", ":")).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "X-Webhook-Signature": sig})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def wait_until(pred, seconds=10.0):
    with anyio.fail_after(seconds):
        while not pred():
            await anyio.sleep(0.02)


async def main(url: str, token: str) -> None:
    seen = {"a": [], "b": [], "c": []}

    def recorder(name):
        async def on_message(message) -> None:
            if getattr(message, "method", None) == "notifications/resources/updated":
                seen[name].append(message.params.uri)
        return on_message

    def transport(stack, terminate=True):
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        return http, streamable_http_client(url, http_client=http, terminate_on_close=terminate)

    async with AsyncExitStack() as stack:
        b_http, b_transport = transport(stack)
        stack.push_async_callback(b_http.aclose)
        b = await stack.enter_async_context(Client(b_transport, mode="legacy", message_handler=recorder("b")))
        c_http, c_transport = transport(stack)
        stack.push_async_callback(c_http.aclose)
        c = await stack.enter_async_context(Client(c_transport))

        hooks = []
        for _ in range(2):
            created = await b.call_tool("create_webhook", {"direction": "inbound"})
            hooks.append(created.structured_content["webhook"])
        inboxes = [f"webhook://webhooks/{h['id']}/events" for h in hooks]
        sub = await stack.enter_async_context(c.listen(resource_subscriptions=inboxes))
        # Entered last, so it can be torn down first (anyio scopes close innermost-first).
        a_stack = AsyncExitStack()
        a_http, a_transport = transport(a_stack, terminate=False)
        a = await a_stack.enter_async_context(Client(a_transport, mode="legacy", message_handler=recorder("a")))
        assert a.protocol_version == "2025-11-25" and b.protocol_version == "2025-11-25", (a.protocol_version, b.protocol_version)
        assert c.protocol_version == "2026-07-28", c.protocol_version

        for uri in [FEED, *inboxes]:
            await a.subscribe_resource(uri)
            await b.subscribe_resource(uri)

        async def next_update():
            with anyio.fail_after(10):
                async for event in sub:
                    if isinstance(event, ResourceUpdated):
                        return event.uri

        # One event for the first webhook: each legacy session hears FEED and that inbox once,
        # the modern client hears that inbox.
        first = await anyio.to_thread.run_sync(post_signed, hooks[0]["url"], hooks[0]["secret"], {"id": "h1", "event": "e", "data": {}})
        seen["c"].append(await next_update())
        await wait_until(lambda: all(len(seen[k]) >= 2 for k in "ab"))
        await anyio.sleep(1.0)  # a duplicate would have arrived by now
        counts_after_first = {k: seen[k].count(FEED) for k in "ab"}
        counts_after_first["c"] = seen["c"].count(inboxes[0])
        assert all(seen[k].count(inboxes[0]) == 1 for k in "ab"), seen

        # Session a vanishes mid-stream: no DELETE, its HTTP connections just close.
        await a_http.aclose()
        try:
            await a_stack.aclose()
        except BaseException:  # noqa: BLE001 - an abrupt drop may surface as an error here
            pass

        # The others keep receiving, and the modern client's next update is the second
        # webhook's (not a repeat of the first).
        second = await anyio.to_thread.run_sync(post_signed, hooks[1]["url"], hooks[1]["secret"], {"id": "h2", "event": "e", "data": {}})
        seen["c"].append(await next_update())
        await wait_until(lambda: seen["b"].count(FEED) >= 2)
        listed = await b.call_tool("list_events", {})
        assert listed.structured_content["count"] == 2, listed
        for client in (b, c):
            read = await client.read_resource(f"webhook://events/{second['event_id']}")
            assert json.loads(read.contents[0].text)["untrusted_payload"]["payload"]["id"] == "h2"

    print(json.dumps({
        "after_first": counts_after_first,
        "b_total": seen["b"].count(FEED),
        "c_sequence": [inboxes.index(u) for u in seen["c"]],
        "events": [first["event_id"], second["event_id"]],
    }))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
