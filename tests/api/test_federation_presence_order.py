"""Presence changes go out to other servers in the order they were made: a burst of status
changes ends, on the remote server, with the last one (the sender sends only the newest queued
presence of a user, so a change queued out of order would be the one the remote keeps)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from homeserver.app import Homeserver
from tests.api.federation_peer import RemotePeer, attach, until
from tests.api.test_federation_api import FED_ON, REMOTE
from tests.api.test_federation_events import _joined_room
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


@FED_ON
async def test_a_burst_of_presence_changes_ends_with_the_last(client: MatrixClient, hs: Homeserver) -> None:
    peer = RemotePeer()
    alice, room, _ = await _joined_room(client, hs)
    attach(hs, peer)
    # Many changes at once (as several devices' syncs and status updates make them): whatever
    # order they are applied in here, the remote server must end with the state shown here.
    await asyncio.gather(*(alice.ok("PUT", f"{V3}/presence/{quote(alice.user_id)}/status",
                                    {"presence": ("online", "unavailable")[i % 2], "status_msg": f"s{i}"})
                           for i in range(40)))
    final = (await alice.ok("GET", f"{V3}/presence/{quote(alice.user_id)}/status"))["status_msg"]

    def statuses() -> list[Any]:
        return [p["push"][0].get("status_msg") for p in peer.edus("m.presence")
                if p["push"][0]["user_id"] == alice.user_id]

    await until(lambda: final in statuses(), what="the final presence at the remote server")
    # and nothing older is still on its way: the queue has drained
    deadline = time.monotonic() + 15
    while await hs.stores.federation_queue.count(REMOTE, "edu"):
        assert time.monotonic() < deadline, "the EDU queue never drained"
        await asyncio.sleep(0.02)  # polling the queue with a deadline
    assert statuses()[-1] == final, statuses()
