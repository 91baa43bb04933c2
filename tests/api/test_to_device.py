"""To-device messages: PUT /sendToDevice, delivered in sync exactly once per device."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def _send(sender: MatrixClient, messages: dict[str, Any], txn: str, etype: str = "m.test") -> None:
    await sender.ok("PUT", f"{V3}/sendToDevice/{etype}/{txn}", {"messages": messages})


def _bodies(sync: dict[str, Any]) -> list[Any]:
    return [e["content"].get("n") for e in sync["to_device"]["events"]]


async def test_delivered_until_acknowledged_then_never_again(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    first = await bob.sync()
    assert first["to_device"]["events"] == []
    await _send(alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "t1")
    got = await bob.sync(since=first["next_batch"])
    assert got["to_device"]["events"] == [{"type": "m.test", "sender": alice.user_id, "content": {"n": 1}}]
    # the response was lost: the same token brings the message again
    again = await bob.sync(since=first["next_batch"])
    assert _bodies(again) == [1]
    # syncing from the later token acknowledges it: gone for good
    assert _bodies(await bob.sync(since=again["next_batch"])) == []
    assert _bodies(await bob.sync(since=first["next_batch"])) == []
    assert _bodies(await bob.sync()) == []


async def test_transaction_ids_make_sends_idempotent(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    since = (await bob.sync())["next_batch"]
    for _ in range(3):
        await _send(alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "same")
    await _send(alice, {bob.user_id: {bob.device_id: {"n": 2}}}, "other")
    assert _bodies(await bob.sync(since=since)) == [1, 2]


async def test_wildcard_reaches_every_device_and_explicit_wins(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob", password="pw-bob-long")
    login = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
        "password": "pw-bob-long"}, token="")
    bob2 = bob.as_user(login["access_token"], login["user_id"], login["device_id"])
    s1, s2 = (await bob.sync())["next_batch"], (await bob2.sync())["next_batch"]
    await _send(alice, {bob.user_id: {"*": {"n": "all"}, bob2.device_id: {"n": "two"}}}, "w")
    assert _bodies(await bob.sync(since=s1)) == ["all"]
    assert _bodies(await bob2.sync(since=s2)) == ["two"]


async def test_long_poll_wakes_and_backlog_comes_in_batches(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    since = (await bob.sync())["next_batch"]
    waiter = asyncio.create_task(bob.sync(since=since, timeout=20000))
    await asyncio.sleep(0)
    await _send(alice, {bob.user_id: {bob.device_id: {"n": -1}}}, "wake")
    got = await asyncio.wait_for(waiter, 10)
    assert _bodies(got) == [-1]
    since = got["next_batch"]
    for i in range(130):
        await _send(alice, {bob.user_id: {bob.device_id: {"n": i}}}, f"b{i}")
    seen: list[Any] = []
    for _ in range(3):
        got = await bob.sync(since=since)
        seen += _bodies(got)
        since = got["next_batch"]
    assert seen == list(range(130))  # in order, none lost, none repeated
    assert _bodies(await bob.sync(since=since, timeout=0)) == []


async def test_old_three_part_tokens_still_work(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    token = (await bob.sync())["next_batch"]
    old = "_".join(token.split("_")[:3])
    await _send(alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "old")
    got = await bob.sync(since=old)
    assert _bodies(got) == [1]
    assert _bodies(await bob.sync(since=got["next_batch"])) == []


async def test_deleted_device_loses_its_inbox(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob", password="pw-bob-long")
    await _send(alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "x")
    await bob.ok("POST", f"{V3}/logout", {})
    # a new device under the old ID does not inherit the deleted device's messages
    login = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
        "password": "pw-bob-long", "device_id": bob.device_id}, token="")
    again = bob.as_user(login["access_token"], login["user_id"], login["device_id"])
    assert _bodies(await again.sync()) == []


@pytest.mark.parametrize("body", [
    {},
    {"messages": []},
    {"messages": {"@b:parley.test": ["x"]}},
    {"messages": {"@b:parley.test": {"DEV": "not an object"}}},
    {"messages": {f"@u{i}:parley.test": {f"D{j}": {} for j in range(100)} for i in range(101)}},
])
async def test_bad_sends(client: MatrixClient, body: dict[str, Any]) -> None:
    alice = await client.register("alice")
    r = await alice.put(f"{V3}/sendToDevice/m.test/t", body)
    assert r.status_code == 400 and r.json()["errcode"].startswith("M_")


async def test_messages_for_unknown_devices_are_dropped(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob", password="pw-bob-long")
    await _send(alice, {bob.user_id: {"LATER": {"n": 1}}, "@nobody:parley.test": {"X": {"n": 2}}}, "u")
    # a device created afterwards under that ID does not find an old message waiting
    login = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
        "password": "pw-bob-long", "device_id": "LATER"}, token="")
    later = bob.as_user(login["access_token"], login["user_id"], login["device_id"])
    assert _bodies(await later.sync()) == []
