"""HTTP pushers against a push gateway on loopback: the notification format, event_id_only,
counts, retries with backoff, rejected pushkeys, refused private addresses, and sends that stay
fast while the gateway hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from homeserver.app import Homeserver
from homeserver.config_push import PushConfig
from homeserver.outbound import AddressPolicy
from tests.conftest import MatrixClient
from tests.push_gateway import TestGateway

V3 = "/_matrix/client/v3"


@pytest.fixture
async def gateway() -> AsyncIterator[TestGateway]:
    gw = await TestGateway().start()
    try:
        yield gw
    finally:
        await gw.close()


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"push": PushConfig(ip_range_allowlist=("127.0.0.0/8",), retry_base_ms=30, poll_interval_ms=50,
                               http_timeout_s=30.0)}


async def setup_pair(client: MatrixClient, gw: TestGateway, **data: Any) -> tuple[MatrixClient, MatrixClient, str]:
    alice, bob = await client.register("alice"), await client.register()
    room = await alice.create_room(preset="public_chat", name="Mission Control")
    await bob.ok("POST", f"{V3}/join/{room}")
    await alice.ok("POST", f"{V3}/pushers/set", {
        "kind": "http", "app_id": "org.example.app", "pushkey": "alice-key", "app_display_name": "Example",
        "device_display_name": "Phone", "lang": "en", "data": {"url": gw.url, "custom": "kept", **data}})
    return alice, bob, room


async def wait_until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_notification_format(client: MatrixClient, gateway: TestGateway) -> None:
    alice, bob, room = await setup_pair(client, gateway)
    await bob.ok("PUT", f"{V3}/profile/{bob.user_id}/displayname", {"displayname": "Major Tom"})
    event_id = await bob.send_text(room, "I'm floating in a most peculiar way")
    [req] = await gateway.wait_for(1)
    assert req.method == "POST" and req.path == "/_matrix/push/v1/notify"
    n = req.json()["notification"]
    assert n["event_id"] == event_id and n["room_id"] == room
    assert n["type"] == "m.room.message" and n["sender"] == bob.user_id
    assert n["sender_display_name"] == "Major Tom" and n["room_name"] == "Mission Control"
    assert n["content"] == {"msgtype": "m.text", "body": "I'm floating in a most peculiar way"}
    assert n["counts"] == {"unread": 1} and n["prio"] == "high"
    [device] = n["devices"]
    assert device["app_id"] == "org.example.app" and device["pushkey"] == "alice-key"
    assert device["data"] == {"custom": "kept"}  # everything but the url
    assert device["tweaks"] == {"sound": "default"}  # a one-to-one room
    assert isinstance(device["pushkey_ts"], int)
    # A second message: the count grows; the sender's own message pushes nothing to the sender.
    await alice.send_text(room, "copy that")
    await bob.send_text(room, "still floating")
    reqs = await gateway.wait_for(2)
    assert reqs[1].json()["notification"]["counts"] == {"unread": 2}
    assert len([r for r in gateway.requests if r.json()["notification"]["sender"] == alice.user_id]) == 0


async def test_event_id_only(client: MatrixClient, gateway: TestGateway) -> None:
    _, bob, room = await setup_pair(client, gateway, format="event_id_only")
    event_id = await bob.send_text(room, "secret plans")
    [req] = await gateway.wait_for(1)
    n = req.json()["notification"]
    assert n["event_id"] == event_id and n["room_id"] == room and n["counts"] == {"unread": 1}
    assert not {"content", "sender", "type", "room_name", "sender_display_name"} & set(n)
    assert n["devices"][0]["data"] == {"custom": "kept", "format": "event_id_only"}


async def test_reading_sends_a_badge_update(client: MatrixClient, gateway: TestGateway) -> None:
    alice, bob, room = await setup_pair(client, gateway)
    await bob.send_text(room, "one")
    last = await bob.send_text(room, "two")
    await gateway.wait_for(2)
    assert gateway.requests[1].json()["notification"]["counts"] == {"unread": 2}
    await alice.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{last}", {})
    reqs = await gateway.wait_for(3)
    n = reqs[2].json()["notification"]
    assert "event_id" not in n and n["counts"] == {} and n["prio"] == "low"
    assert [d["pushkey"] for d in n["devices"]] == ["alice-key"]


async def test_retries_with_backoff(client: MatrixClient, gateway: TestGateway, hs: Homeserver) -> None:
    gateway.statuses = [500, 503]
    _, bob, room = await setup_pair(client, gateway)
    event_id = await bob.send_text(room, "try again")
    reqs = await gateway.wait_for(3)
    assert [r.json()["notification"]["event_id"] for r in reqs] == [event_id] * 3
    # Backoff: the second wait is about twice the first (base 30 ms, doubling).
    first, second = reqs[1].at - reqs[0].at, reqs[2].at - reqs[1].at
    assert first >= 0.03 and second >= 0.06
    await wait_until(lambda: _pending_is(hs, 0))


async def test_gives_up_after_max_attempts_and_on_4xx(client: MatrixClient, gateway: TestGateway,
                                                      hs: Homeserver) -> None:
    gateway.statuses = [400]
    _, bob, room = await setup_pair(client, gateway)
    await bob.send_text(room, "bad request")
    await gateway.wait_for(1)
    await wait_until(lambda: _pending_is(hs, 0))
    assert len(gateway.requests) == 1


async def test_rejected_pushkey_removes_the_pusher(client: MatrixClient, gateway: TestGateway) -> None:
    gateway.rejected = ["alice-key"]
    alice, bob, room = await setup_pair(client, gateway)
    await bob.send_text(room, "anyone there?")
    await gateway.wait_for(1)

    async def gone() -> bool:
        return (await alice.ok("GET", f"{V3}/pushers"))["pushers"] == []

    await wait_until(gone)


async def test_private_address_refused_without_allowlist(client: MatrixClient, gateway: TestGateway,
                                                         hs: Homeserver) -> None:
    hs.notifications.delivery.http.policy = AddressPolicy(())
    _, bob, room = await setup_pair(client, gateway)
    await bob.send_text(room, "to loopback")
    await wait_until(lambda: _pending_is(hs, 0))
    assert gateway.requests == []


async def test_sends_stay_fast_while_the_gateway_hangs(client: MatrixClient, gateway: TestGateway,
                                                       hs: Homeserver) -> None:
    gateway.hang = True
    _, bob, room = await setup_pair(client, gateway)
    await bob.send_text(room, "first")
    await gateway.wait_for(1)  # the gateway now holds a request open and never answers
    start = time.perf_counter()
    for i in range(5):
        await bob.send_text(room, f"message {i}")
    elapsed = time.perf_counter() - start
    # The gateway's timeout is 30 s: had a send waited on it, this would take that long.
    assert elapsed < 5.0, elapsed
    assert len(gateway.requests) == 1  # one request at a time per pusher: the rest wait their turn
    # Another user's pusher on a healthy gateway is still served while the first one hangs.
    healthy = await TestGateway().start()
    try:
        carol = await client.register("carol")
        await carol.ok("POST", f"{V3}/join/{room}")
        await carol.ok("POST", f"{V3}/pushers/set", {
            "kind": "http", "app_id": "org.example.app", "pushkey": "carol-key", "app_display_name": "Example",
            "device_display_name": "Phone", "lang": "en", "data": {"url": healthy.url}})
        event_id = await bob.send_text(room, "for carol too")
        [req] = await healthy.wait_for(1)
        assert req.json()["notification"]["event_id"] == event_id
    finally:
        await healthy.close()


async def _pending_is(hs: Homeserver, n: int) -> bool:
    return await hs.stores.pushers.pending_count() == n


async def test_two_workers_deliver_once(tmp_path: Any, gateway: TestGateway) -> None:
    """Two workers on one PostgreSQL database: one holds the push-delivery lease; each
    notification reaches the gateway once, whichever worker persisted the event, and the other
    worker takes over when the holder stops."""
    import httpx

    from client_api.app import build_app
    from homeserver.protocol.signing import generate_signing_key
    from homeserver.storage.stores import Stores
    from tests.conftest import _dsn_for, create_pg_database, drop_pg_database, make_config

    name = await create_pg_database()
    workers: list[Homeserver] = []
    key = generate_signing_key("t1")  # one server: the workers share its key (and token secret)
    try:
        for i in range(2):
            cfg = make_config(tmp_path / f"w{i}", _dsn_for(name), **{
                "push": PushConfig(ip_range_allowlist=("127.0.0.0/8",), poll_interval_ms=50)})
            w = Homeserver(cfg, await Stores.open(cfg.database), key)
            w.notifications.delivery.lease.retry_s = 0.05
            w.notifications.delivery.lease.check_s = 0.05
            await w.start_background()
            workers.append(w)
        clients = []
        for w in workers:
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(w.config, w)),
                                     base_url="http://parley.test")
            clients.append(MatrixClient(http))
        alice, bob, room = await setup_pair(clients[0], gateway)
        bob_on_1 = clients[1].as_user(bob.token or "", bob.user_id or "", bob.device_id or "")
        await bob.send_text(room, "from worker 0")
        await bob_on_1.send_text(room, "from worker 1")
        reqs = await gateway.wait_for(2)
        await wait_until(lambda: _pending_is(workers[0], 0))
        bodies = sorted(r.json()["notification"]["content"]["body"] for r in reqs)
        assert bodies == ["from worker 0", "from worker 1"]
        held = [i for i, w in enumerate(workers) if w.notifications.delivery.lease.held]
        assert len(held) == 1
        # The holder stops; the other takes the lease over and delivers the next message.
        other = 1 - held[0]
        await workers[held[0]].close()
        workers = [workers[other]]
        bob_here = clients[other].as_user(bob.token or "", bob.user_id or "", bob.device_id or "")
        await bob_here.send_text(room, "after failover")
        reqs = await gateway.wait_for(3)
        assert sorted(r.json()["notification"]["content"]["body"] for r in reqs)[0] == "after failover"
        assert len(gateway.requests) == 3
        for c in clients:
            await c.http.aclose()
    finally:
        for w in workers:
            await w.close()
        await drop_pg_database(name)
