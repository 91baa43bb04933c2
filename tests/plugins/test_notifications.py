"""Notification hooks against a real server: the example pager plugin forwards mentions (and
only mentions) in its rooms to a loopback HTTP receiver; a plugin whose notification hook never
returns holds up neither sending nor the other plugins' hooks."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.plugins.conftest import ADMIN_API, FIXTURES, REPO, SERVER_NAME, User, running_plugin_server, until
from tests.plugins.test_webhooks import Receiver

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PAGER = f"@pager:{SERVER_NAME}"
STALL = f"@stall:{SERVER_NAME}"


async def _send(user: User, room: str, content: dict[str, Any], timeout: float) -> None:
    """A send with its own client deadline (shorter than the stalled hook's timeout)."""
    r = await user.http.put(f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{uuid.uuid4().hex}",
                            json=content, headers={"Authorization": f"Bearer {user.token}"}, timeout=timeout)
    assert r.status_code == 200, r.text


def _mention(user_id: str, body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": [user_id]}}


async def test_pager_forwards_mentions_and_a_hanging_hook_never_slows_sending(tmp_path: Path, backend: str) -> None:
    pages, stalls = Receiver(), Receiver()
    async with pages as page_url, stalls as stall_url, \
            running_plugin_server(tmp_path, backend, PARLEY_PLUGINS__HOOK_TIMEOUT_S="120") as server:
        admin = await server.register("admin")
        bob = await server.register("bob")
        for name, folder, url in (("pager", REPO / "plugins" / "pager", page_url),
                                  ("stall", FIXTURES / "stall", stall_url)):
            await admin.call("POST", f"{ADMIN_API}/install", {"path": str(folder)})
            await admin.call("PUT", f"{ADMIN_API}/{name}/settings", {"url": url})
            await admin.call("PUT", f"{ADMIN_API}/{name}/enabled", {"enabled": True})
            await server.wait_running(admin, name)
        room = await admin.create_room(invite=[bob.user_id, PAGER, STALL])
        await bob.call("POST", f"/_matrix/client/v3/join/{quote(room)}", {})
        await server.bot_joined(admin, room, PAGER)
        await server.bot_joined(admin, room, STALL)

        # A plain message notifies bob but is no mention: the pager (highlights only) skips it,
        # while the stall plugin (every notification) takes it and never returns.
        await _send(admin, room, {"msgtype": "m.text", "body": "plain chatter"}, timeout=20)
        await until(lambda: _count(stalls, 1))
        await _send(admin, room, _mention(bob.user_id, "bob: the deploy is down"), timeout=20)

        async def paged() -> list[dict[str, Any]]:
            return [json.loads(body) for _, body in pages.requests]
        first = (await until(paged))[0]
        assert first["user_id"] == bob.user_id
        assert first["sender"] == admin.user_id
        assert first["body"] == "bob: the deploy is down"
        assert first["room_id"] == room

        # The stalled hook (timeout 120 s) is still pending; sends with a 20 s deadline go
        # through, and the pager keeps paging.
        for i in range(5):
            await _send(admin, room, _mention(bob.user_id, f"bob: page {i}"), timeout=20)
        await until(lambda: _count(pages, 6))
        assert [json.loads(b)["body"] for _, b in pages.requests] == \
            ["bob: the deploy is down"] + [f"bob: page {i}" for i in range(5)]
        assert len(stalls.requests) == 1
        status = (await server.status(admin, "stall"))["process"]
        assert (status["state"], status["restarts"]) == ("running", 0)  # still stuck in its first hook


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n
