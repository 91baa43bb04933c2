"""The outbound federation sender, in-process on SQLite and PostgreSQL against an in-memory peer
(tests/api/federation_peer.py): local events reach the room's other servers in order, batched
(at most 50 PDUs a transaction), retried with backoff under the same transaction ID, caught up
after an outage, kept across a restart, and sent by exactly one of two workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from client_api.app import build_app
from homeserver.app import Homeserver
from homeserver.config_federation import FederationConfig
from homeserver.protocol.events import compute_event_id, hash_and_sign_event
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.protocol.signing import generate_signing_key
from homeserver.storage.stores import Stores
from tests.api.federation_peer import RemotePeer, attach, queue_drained, until
from tests.api.test_federation_api import FED_ON, REMOTE, signed
from tests.api.test_federation_events import BOB, FED, _joined_room
from tests.conftest import REDIS_URL, MatrixClient, make_config

V3 = "/_matrix/client/v3"


async def _room_with_remote(client: MatrixClient, hs: Homeserver, peer: RemotePeer) -> tuple[MatrixClient, str]:
    alice, room, _ = await _joined_room(client, hs)
    attach(hs, peer)
    return alice, room


@FED_ON
async def test_local_events_reach_the_remote_in_order_and_batched(client: MatrixClient, hs: Homeserver) -> None:
    peer = RemotePeer(fail=10**6)  # down at first: the backlog builds up behind the first transaction
    hs.federation_sender.base_backoff_ms = 50
    hs.federation_sender.max_backoff_ms = 100
    alice, room = await _room_with_remote(client, hs, peer)
    sent = [await alice.send_text(room, f"m{i}") for i in range(60)]
    peer.fail = 0  # back up
    await until(lambda: len(peer.pdu_bodies()) >= 60, what="60 messages delivered")
    assert peer.pdu_bodies() == [f"m{i}" for i in range(60)]
    ids = [p["event_id"] if "event_id" in p else None for a in peer.delivered for p in a.body["pdus"]]
    assert all(i is None for i in ids)  # room v10+ PDUs carry no event_id
    assert all(len(a.body["pdus"]) <= 50 and len(a.body["edus"]) <= 100 for a in peer.attempts)
    assert max(len(a.body["pdus"]) for a in peer.delivered) == 50
    for a in peer.attempts:
        assert a.body["origin"] == hs.server_name and a.authorization.startswith("X-Matrix ")
        assert f'destination="{REMOTE}"' in a.authorization or f"destination={REMOTE}" in a.authorization
    # the events are the ones stored here, signed by this server
    first = peer.delivered[0].body["pdus"][0]
    stored = await hs.stores.events.get(sent[0])
    assert stored is not None and first["signatures"] == stored.pdu["signatures"]
    # received events are never sent back: the remote's own join is not in any transaction
    assert all(p["sender"] != BOB for a in peer.attempts for p in a.body["pdus"])
    await queue_drained(hs)


@FED_ON
async def test_retries_back_off_and_reuse_the_transaction_id(client: MatrixClient, hs: Homeserver) -> None:
    peer = RemotePeer(fail=3)
    hs.federation_sender.base_backoff_ms = 100
    alice, room = await _room_with_remote(client, hs, peer)
    await alice.send_text(room, "once")
    await until(lambda: len(peer.delivered) == 1, what="delivery after three failures")
    assert [a.answered for a in peer.attempts] == [500, 500, 500, 200]
    assert len({a.txn_id for a in peer.attempts}) == 1  # one transaction, retried under its ID
    assert all(a.body == peer.attempts[0].body for a in peer.attempts)
    gaps = [b.at - a.at for a, b in zip(peer.attempts, peer.attempts[1:], strict=False)]
    # 100 ms, 200 ms, 400 ms: each wait at least the schedule's, and growing
    for gap, wanted in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert gap >= wanted * 0.95, gaps
    # a new message is a new transaction
    await alice.send_text(room, "twice")
    await until(lambda: len(peer.delivered) == 2, what="second transaction")
    assert peer.delivered[1].txn_id != peer.delivered[0].txn_id
    assert peer.pdu_bodies() == ["once", "twice"]
    assert (await hs.stores.federation_queue.state(REMOTE)).failures == 0


@FED_ON
async def test_a_refused_transaction_is_dropped_not_retried(client: MatrixClient, hs: Homeserver) -> None:
    peer = RemotePeer(fail=1, fail_status=400)
    alice, room = await _room_with_remote(client, hs, peer)
    await alice.send_text(room, "refused")
    await until(lambda: len(peer.attempts) == 1, what="the refused attempt")
    await alice.send_text(room, "taken")
    await until(lambda: len(peer.delivered) == 1, what="the next transaction")
    assert [a.answered for a in peer.attempts] == [400, 200]
    assert peer.pdu_bodies() == ["taken"]


@FED_ON
async def test_catch_up_sends_the_newest_event_of_each_room(client: MatrixClient, hs: Homeserver) -> None:
    peer = RemotePeer(fail=10**6)
    sender = hs.federation_sender
    sender.base_backoff_ms = 50
    sender.max_backoff_ms = 100
    sender.catchup_threshold = 5
    alice, room = await _room_with_remote(client, hs, peer)
    await alice.send_text(room, "before the outage")
    await until(lambda: len(peer.attempts) == 1, what="the failed attempt")
    for i in range(12):
        await alice.send_text(room, f"during {i}")
    peer.fail = 0
    await until(lambda: len(peer.delivered) >= 2, what="catch-up")
    # the transaction in flight is resent as it was; of the 12 queued behind it only the newest
    # goes (the remote asks for the gap with get_missing_events)
    assert peer.pdu_bodies() == ["before the outage", "during 11"]
    newest = peer.delivered[-1].body["pdus"][0]
    got = await hs.stores.events.get_many(newest["prev_events"])
    assert [e.pdu["content"]["body"] for e in got.values()] == ["during 10"]


@FED_ON
async def test_a_join_through_send_join_is_passed_on_to_the_other_servers(client: MatrixClient,
                                                                         hs: Homeserver) -> None:
    second, second_key = "second.example", generate_signing_key("s2")
    peer = RemotePeer(others={second: second_key})
    alice, room = await _room_with_remote(client, hs, peer)
    dan = f"@dan:{second}"
    uri = f"{FED}/make_join/{quote(room)}/{quote(dan)}?ver=10&ver=11&ver=12"
    resp = await client.request("GET", uri, token="", headers=signed(second_key, second, hs.server_name, "GET", uri))
    assert resp.status_code == 200, resp.text
    rv = KNOWN_ROOM_VERSIONS[resp.json()["room_version"]]
    join = hash_and_sign_event(resp.json()["event"], second, second_key, rv)
    uri = f"/_matrix/federation/v2/send_join/{quote(room)}/{quote(compute_event_id(join, rv))}"
    resp = await client.request("PUT", uri, join, token="",
                                headers=signed(second_key, second, hs.server_name, "PUT", uri, join))
    assert resp.status_code == 200, resp.text
    await until(lambda: any(p["sender"] == dan for a in peer.delivered for p in a.body["pdus"]),
                what="the join passed on to the first remote")
    # the joining server itself is not sent its own join, and nothing else was forwarded
    assert [p["sender"] for a in peer.delivered for p in a.body["pdus"]] == [dan]
    await queue_drained(hs)


_KEY = generate_signing_key("t1")


async def _server(backend: str, tmp_path: Path, **overrides: Any) -> Homeserver:
    """A homeserver process of its own on the shared database `backend` (same name, same key)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = make_config(tmp_path, backend, federation=FederationConfig(enabled=True), **overrides)
    server = Homeserver(config, await Stores.open(config.database), _KEY)
    await server.start_background()
    return server


@asynccontextmanager
async def _client_of(server: Homeserver) -> AsyncIterator[MatrixClient]:
    transport = httpx.ASGITransport(app=build_app(server.config, server))
    async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as http:
        yield MatrixClient(http)


async def test_the_queue_survives_a_restart(backend: str, tmp_path: Path) -> None:
    first = await _server(backend, tmp_path / "first")
    try:
        peer = RemotePeer(fail=1_000)
        first.federation_sender.base_backoff_ms = 50
        first.federation_sender.max_backoff_ms = 100
        async with _client_of(first) as client:
            alice, room = await _room_with_remote(client, first, peer)
            for i in range(3):
                await alice.send_text(room, f"kept {i}")
        await until(lambda: len(peer.attempts) >= 2, what="failed attempts")
        in_flight = (await first.stores.federation_queue.state(REMOTE)).txn_id
        assert in_flight is not None
    finally:
        await first.close()
    # the next process on the same database
    again = await _server(backend, tmp_path / "second")
    try:
        healthy = RemotePeer()
        attach(again, healthy)
        await until(lambda: len(healthy.pdu_bodies()) == 3, what="the kept messages")
        assert healthy.pdu_bodies() == ["kept 0", "kept 1", "kept 2"]
        # the transaction that was in flight goes under its original ID, with its original body
        assert healthy.delivered[0].txn_id == in_flight
        assert healthy.delivered[0].body == peer.attempts[0].body
    finally:
        await again.close()


async def test_events_committed_but_never_queued_are_queued_at_the_next_start(backend: str, tmp_path: Path) -> None:
    """A process that ends between an event's commit and its queueing (the persister's hook)
    loses nothing: the next sender queues the local events after the persisted watermark."""
    first = await _server(backend, tmp_path / "first")
    try:
        peer = RemotePeer()
        async with _client_of(first) as client:
            alice, room = await _room_with_remote(client, first, peer)
            await alice.send_text(room, "queued")
            await until(lambda: peer.pdu_bodies() == ["queued"], what="the first message")
            mark = await first.stores.federation_queue.watermark()

            async def crashed(ev: Any) -> None:  # the hook never runs: as if the process died
                return None

            first.federation_outbound.event_persisted = crashed  # type: ignore[method-assign]
            lost = [await alice.send_text(room, f"lost {i}") for i in range(2)]
        assert await first.stores.federation_queue.watermark() == mark
        assert peer.pdu_bodies() == ["queued"]
    finally:
        await first.close()
    again = await _server(backend, tmp_path / "second")
    try:
        healthy = RemotePeer()
        attach(again, healthy)
        await until(lambda: len(healthy.pdu_bodies()) == 2, what="the messages that were never queued")
        assert healthy.pdu_bodies() == ["lost 0", "lost 1"]
        stored = await again.stores.events.get(lost[1])
        assert stored is not None
        assert await again.stores.federation_queue.watermark() == stored.stream_ordering
        # Once queued, they are not queued again.
        assert await again.federation_outbound.queue_missed_events() == 0
    finally:
        await again.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_workers_one_sender(backend: str, tmp_path: Path) -> None:
    """Two workers on one PostgreSQL database (Redis bus): exactly one sends; when it stops,
    the other takes over the role."""
    first = await _server(backend, tmp_path / "w1", redis_url=REDIS_URL)
    second = await _server(backend, tmp_path / "w2", redis_url=REDIS_URL)
    try:
        for w in (first, second):
            w.federation_sender.lease.retry_s = 0.2
        await until(lambda: first.federation_sender.running or second.federation_sender.running,
                    what="a sender")
        holder, other = (first, second) if first.federation_sender.running else (second, first)
        assert not other.federation_sender.running
        by_holder, by_other = RemotePeer(), RemotePeer()
        # the room, the remote join and the messages all go through the worker that does not send
        async with _client_of(other) as client:
            alice, room = await _room_with_remote(client, other, by_other)
            attach(holder, by_holder)
            for i in range(5):
                await alice.send_text(room, f"w{i}")
            await until(lambda: len(by_holder.pdu_bodies()) == 5, what="delivery by the holder")
            assert by_holder.pdu_bodies() == [f"w{i}" for i in range(5)]
            assert by_other.attempts == []
            # the holder stops: the other worker takes the role and sends what follows
            await holder.federation_sender.stop()
            await until(lambda: other.federation_sender.running, what="takeover")
            sent_by_holder = len(by_holder.attempts)
            await alice.send_text(room, "after takeover")
            await until(lambda: "after takeover" in by_other.pdu_bodies(), what="delivery by the other")
            assert len(by_holder.attempts) == sent_by_holder
            # A transaction the holder had sent but not yet marked done when it stopped is sent
            # again by the new holder, under the same ID and body (the remote deduplicates it).
            first_seen: dict[str, Any] = {}
            for a in by_holder.delivered + by_other.delivered:
                assert first_seen.setdefault(a.txn_id, a.body) == a.body
            in_order = sorted(first_seen.items(), key=lambda kv: int(kv[0].rsplit(".", 1)[1]))
            bodies = [p["content"]["body"] for _, body in in_order for p in body["pdus"]]
            assert bodies == [f"w{i}" for i in range(5)] + ["after takeover"]
    finally:
        await first.close()
        await second.close()


@FED_ON
async def test_a_backlog_of_typing_and_presence_is_sent_in_its_latest_state(client: MatrixClient,
                                                                          hs: Homeserver) -> None:
    peer = RemotePeer(fail=10**6)
    hs.federation_sender.base_backoff_ms = 50
    hs.federation_sender.max_backoff_ms = 100
    alice, room = await _room_with_remote(client, hs, peer)
    await alice.send_text(room, "first")  # in flight while the rest queues up
    await until(lambda: len(peer.attempts) >= 1, what="a failed attempt")
    for state in ("online", "unavailable", "online", "offline"):
        await alice.ok("PUT", f"{V3}/presence/{quote(alice.user_id or '')}/status", {"presence": state})
    for typing in (True, False, True):
        await alice.ok("PUT", f"{V3}/rooms/{room}/typing/{quote(alice.user_id or '')}",
                       {"typing": typing, "timeout": 10_000})
    peer.fail = 0
    await until(lambda: len(peer.delivered) >= 2, what="the backlog")
    await queue_drained(hs)
    assert [p["push"][0]["presence"] for p in peer.edus("m.presence")] == ["offline"]
    assert [t["typing"] for t in peer.edus("m.typing")] == [True]
