"""Forwards mentions to an external pager: for each highlight notification (someone mentioned a
member, or said one of their keywords) in a room the pager bot was invited to, POST

    {"user_id": <who is paged>, "room_id", "event_id", "sender", "body"}

as JSON to the `url` setting (optionally only for the users listed in `users`). A failed POST
is logged to the server's log, like any handler error."""

import asyncio
import json
import urllib.request

from parley_plugin import Notification, Plugin

plugin = Plugin()


def _post(url: str, page: dict) -> None:
    req = urllib.request.Request(url, data=json.dumps(page).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - the admin's configured URL
        resp.read()


@plugin.on_notification
async def page(n: Notification) -> None:
    url = str(plugin.settings.get("url", ""))
    only = {u.strip() for u in str(plugin.settings.get("users", "")).split(",") if u.strip()}
    if not url or not n.highlight or (only and n.user_id not in only):
        return
    body = str(n.event.content.get("body", ""))[:500]
    await asyncio.to_thread(_post, url, {"user_id": n.user_id, "room_id": n.room_id, "event_id": n.event_id,
                                         "sender": n.event.sender, "body": body})
