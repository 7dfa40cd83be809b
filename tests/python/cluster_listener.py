"""The official Python MCP SDK as a session on one instance of a cluster.

Usage: cluster_listener.py BINARY DATABASE_URL MODE DATA_DIR   (MODE: legacy | auto)

Starts `webhook-mcp serve --database-url DATABASE_URL` over stdio, subscribes to
webhook://events (resources/subscribe in legacy mode, subscriptions/listen in the default mode),
prints `ready` and waits for an event that someone else POSTs to another instance. Then it keeps
listening for 1.5 s and prints one JSON line: how many resources/updated notifications for
webhook://events it got and the newest event's id. Exits non-zero if none came within 20 s.
"""

import json
import os
import sys
import warnings

import anyio
from mcp import Client, StdioServerParameters
from mcp.shared.subscriptions import ResourceUpdated

warnings.simplefilter("ignore")  # the legacy subscribe API is deprecated on purpose


async def main(binary: str, database_url: str, mode: str, data_dir: str) -> None:
    updates: list[str] = []
    first = anyio.Event()

    async def on_message(message) -> None:
        # In the default mode the SDK hands the same notification to the listen iterator too:
        # count it there only.
        if mode == "legacy" and getattr(message, "method", None) == "notifications/resources/updated":
            updates.append(message.params.uri)
            first.set()

    params = StdioServerParameters(
        command=binary,
        args=["serve", "--database-url", database_url, "--data-dir", data_dir,
              "--secrets-key", os.environ["WEBHOOK_MCP_SECRETS_KEY"],
              "--receiver-addr", "127.0.0.1:0"],
        env={"WEBHOOK_MCP_LOG": "warn"},
    )
    async with Client(params, mode=mode, message_handler=on_message) as client:
        if mode == "legacy":
            await client.subscribe_resource("webhook://events")
            print("ready", flush=True)
            with anyio.fail_after(20):
                await first.wait()
            await anyio.sleep(1.5)
        else:
            async with client.listen(resource_subscriptions=["webhook://events"]) as sub:
                print("ready", flush=True)
                with anyio.move_on_after(20):
                    async for event in sub:
                        if isinstance(event, ResourceUpdated):
                            updates.append(event.uri)
                            break
                assert updates, "no notification within 20 s"
                with anyio.move_on_after(1.5):
                    async for event in sub:
                        if isinstance(event, ResourceUpdated):
                            updates.append(event.uri)
        feed = json.loads((await client.read_resource("webhook://events")).contents[0].text)
        print(json.dumps({
            "mode": mode,
            "protocol_version": client.protocol_version,
            "updates": [u for u in updates if u == "webhook://events"],
            "newest_event": feed["events"][0]["id"] if feed["events"] else None,
        }), flush=True)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:5])
