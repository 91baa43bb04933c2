"""matrix-nio, unmodified, drives a real Parley process through a whole conversation."""

from __future__ import annotations

import asyncio
from typing import Any

from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
)
from nio.api import RoomPreset


async def _sync_until(client: AsyncClient, done: Any, since: str | None,
                      timeout_s: float = 20) -> tuple[list[Any], str]:
    """Long-poll /sync, collecting timeline events, until done(events) holds."""
    collected: list[Any] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        resp = await client.sync(timeout=5000, since=since, sync_filter={"room": {"timeline": {"limit": 50}}})
        assert isinstance(resp, SyncResponse), resp
        since = resp.next_batch
        for room in resp.rooms.join.values():
            collected.extend(room.timeline.events)
        for room in resp.rooms.leave.values():
            collected.extend(room.timeline.events)
        if done(collected, resp):
            return collected, since
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for sync"


async def test_nio_conversation(server: str) -> None:
    alice = AsyncClient(server, "alice")
    bob_reg = AsyncClient(server, "bob")
    bob = AsyncClient(server, "@bob:e2e.parley")
    try:
        assert isinstance(await alice.register("alice", "alice-password-1", "alice-laptop"), RegisterResponse)
        assert isinstance(await bob_reg.register("bob", "bob-password-1"), RegisterResponse)
        login = await bob.login("bob-password-1", device_name="bob-phone")
        assert isinstance(login, LoginResponse), login

        created = await alice.room_create(name="Project", topic="All about it", preset=RoomPreset.private_chat)
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await alice.room_invite(room_id, "@bob:e2e.parley")

        first = await bob.sync(timeout=0)
        assert isinstance(first, SyncResponse)
        assert room_id in first.rooms.invite
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        _, bob_since = await _sync_until(bob, lambda evs, r: room_id in r.rooms.join, first.next_batch)

        # 20 messages, received in order by bob's long-polling sync
        async def send_all() -> list[str]:
            ids = []
            for i in range(20):
                r = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"message {i}"})
                assert isinstance(r, RoomSendResponse), r
                ids.append(r.event_id)
            return ids

        def got_twenty(evs: list[Any], _: Any) -> bool:
            return sum(1 for e in evs if getattr(e, "body", "").startswith("message ")) >= 20

        sent, (received, bob_since) = await asyncio.gather(send_all(), _sync_until(bob, got_twenty, bob_since))
        texts = [e.body for e in received if getattr(e, "body", "").startswith("message ")]
        assert texts == [f"message {i}" for i in range(20)]
        assert [e.event_id for e in received if getattr(e, "body", "").startswith("message ")] == sent

        target = sent[5]
        edit = await bob.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "* edited",
            "m.new_content": {"msgtype": "m.text", "body": "edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent[19]},
        })
        assert isinstance(edit, RoomSendResponse), edit
        react = await bob.room_send(room_id, "m.reaction", {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "👍"},
        })
        assert isinstance(react, RoomSendResponse), react
        thread = await bob.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "thread reply",
            "m.relates_to": {"rel_type": "m.thread", "event_id": target},
        })
        assert isinstance(thread, RoomSendResponse), thread
        redaction = await alice.room_redact(room_id, sent[3], reason="typo")
        assert getattr(redaction, "event_id", None), redaction

        def saw_all(evs: list[Any], _: Any) -> bool:
            ids = {e.event_id for e in evs}
            return {edit.event_id, react.event_id, thread.event_id, redaction.event_id} <= ids

        evs, bob_since = await _sync_until(bob, saw_all, bob_since)
        by_id = {e.event_id: e for e in evs}
        assert by_id[react.event_id].source["content"]["m.relates_to"]["key"] == "👍"
        assert by_id[thread.event_id].source["content"]["m.relates_to"]["rel_type"] == "m.thread"
        assert by_id[redaction.event_id].source["redacts"] == sent[3]
        redacted = await bob.room_get_event(room_id, sent[3])
        assert redacted.event.source["content"] == {}

        # page back to the room's creation
        token = bob_since
        seen: list[Any] = []
        for _ in range(50):
            page = await bob.room_messages(room_id, start=token, limit=10)
            assert isinstance(page, RoomMessagesResponse), page
            seen.extend(page.chunk)
            if not page.chunk or page.end is None or page.end == token:
                break
            token = page.end
        types = [e.source["type"] for e in seen]
        assert types[-1] == "m.room.create"
        bodies = [e.source["content"].get("body") for e in seen if e.source["type"] == "m.room.message"]
        expected = [f"message {i}" for i in reversed(range(20)) if i != 3]
        assert [b for b in bodies if b and b.startswith("message ")] == expected

        # profile changes reach the other member
        await alice.set_displayname("Alice Liddell")
        profile = await bob.get_profile("@alice:e2e.parley")
        assert profile.displayname == "Alice Liddell"

        def saw_name(evs: list[Any], _: Any) -> bool:
            return any(e.source.get("type") == "m.room.member"
                       and e.source.get("content", {}).get("displayname") == "Alice Liddell" for e in evs)

        _, bob_since = await _sync_until(bob, saw_name, bob_since)

        # a file: nio uploads with /_matrix/media/v3/upload and downloads through authenticated media
        import io
        payload = b"parley file " * 1000
        up, _ = await alice.upload(io.BytesIO(payload), content_type="text/plain", filename="notes.txt",
                                   filesize=len(payload))
        assert getattr(up, "content_uri", "").startswith("mxc://e2e.parley/"), up
        down = await bob.download(up.content_uri)
        assert getattr(down, "body", None) == payload, down

        # bob leaves; alice sees it
        alice_first = await alice.sync(timeout=0)
        await bob.room_leave(room_id)

        def saw_leave(evs: list[Any], _: Any) -> bool:
            return any(e.source.get("type") == "m.room.member" and e.source.get("state_key") == "@bob:e2e.parley"
                       and e.source["content"].get("membership") == "leave" for e in evs)

        await _sync_until(alice, saw_leave, alice_first.next_batch)
    finally:
        for c in (alice, bob_reg, bob):
            await c.close()
