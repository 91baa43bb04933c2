"""E2EE keys across servers, in-process (SQLite and PostgreSQL): the federation endpoints
`user/devices`, `user/keys/query` and `user/keys/claim`, and the client's /keys/query and
/keys/claim fanning out to other servers (an in-memory peer speaking the federation API), with
failures, timeouts and the cache of remote device lists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from homeserver.app import Homeserver
from homeserver.protocol.signing import generate_signing_key, sign_json, verify_key_b64
from tests.api.test_federation_api import FED_ON, REMOTE, REMOTE_KEY, remote_keys_handler, signed, use_transport
from tests.conftest import MatrixClient

BOB = f"@bob:{REMOTE}"
BOB_DEVICE = generate_signing_key("BOBDEV")
BOB_MASTER = generate_signing_key("master")


def bob_device_keys() -> dict[str, Any]:
    obj = {"user_id": BOB, "device_id": "BOBDEV", "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
           "keys": {"curve25519:BOBDEV": "c" * 43, "ed25519:BOBDEV": verify_key_b64(BOB_DEVICE)}}
    return sign_json(obj, BOB, BOB_DEVICE)


def bob_otk() -> dict[str, Any]:
    return sign_json({"key": "k" * 43}, BOB, BOB_DEVICE)


def bob_master() -> dict[str, Any]:
    pub = verify_key_b64(BOB_MASTER)
    return {"user_id": BOB, "usage": ["master"], "keys": {f"ed25519:{pub}": pub}}


class Peer:
    """remote.example's federation API for keys; other servers are unreachable or hang."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.never = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host, path = request.headers["host"], request.url.path
        if host == "down.example":
            raise httpx.ConnectError("connection refused")
        if host == "slow.example":
            await self.never.wait()  # a server that never answers: the client's timeout must end it
        if host != REMOTE or path.startswith("/_matrix/key/"):
            return remote_keys_handler([])(request)
        self.calls.append(path)
        body = orjson.loads(request.content) if request.content else {}
        if path.endswith("/user/keys/query"):
            assert "Authorization" in request.headers
            devices = {u: {"BOBDEV": bob_device_keys()} for u in body["device_keys"] if u == BOB}
            # A lie about another server's user: must be dropped.
            devices["@mallory:elsewhere.example"] = {"X": {"user_id": "@mallory:elsewhere.example",
                                                           "device_id": "X", "keys": {}}}
            return httpx.Response(200, json={"device_keys": devices,
                                             "master_keys": {BOB: bob_master()} if BOB in devices else {}})
        if path.endswith("/user/keys/claim"):
            wanted = body["one_time_keys"]
            out = {BOB: {"BOBDEV": {"signed_curve25519:AAAA": bob_otk()}}} if BOB in wanted else {}
            return httpx.Response(200, json={"one_time_keys": out})
        return httpx.Response(404, json={"errcode": "M_UNRECOGNIZED", "error": "no"})


def use_peer(hs: Homeserver, peer: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> None:
    use_transport(hs, peer)  # type: ignore[arg-type]  # MockTransport takes async handlers too
    hs.keys.remote.federation = hs.federation


async def _upload_alice(alice: MatrixClient) -> dict[str, Any]:
    dev = generate_signing_key(alice.device_id or "")
    keys = sign_json({"user_id": alice.user_id, "device_id": alice.device_id,
                      "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
                      "keys": {f"curve25519:{alice.device_id}": "a" * 43,
                               f"ed25519:{alice.device_id}": verify_key_b64(dev)}}, alice.user_id or "", dev)
    otk = sign_json({"key": "o" * 43}, alice.user_id or "", dev)
    await alice.ok("POST", "/_matrix/client/v3/keys/upload",
                   {"device_keys": keys, "one_time_keys": {"signed_curve25519:OTK1": otk}})
    return keys


@FED_ON
async def test_query_and_claim_fan_out_to_other_servers(client: MatrixClient, hs: Homeserver) -> None:
    peer = Peer()
    use_peer(hs, peer)
    alice = await client.register("alice")
    await _upload_alice(alice)
    started = time.monotonic()
    body = await alice.ok("POST", "/_matrix/client/v3/keys/query", {"timeout": 1500, "device_keys": {
        alice.user_id: [], BOB: [], f"@nobody:{REMOTE}": [], "@carol:down.example": [],
        "@dave:slow.example": []}})
    assert time.monotonic() - started < 10  # the hanging server was given up on after the timeout
    assert list(body["device_keys"][alice.user_id]) == [alice.device_id]
    assert body["device_keys"][BOB] == {"BOBDEV": bob_device_keys()}
    assert body["master_keys"][BOB] == bob_master()
    assert "@mallory:elsewhere.example" not in body["device_keys"]
    assert f"@nobody:{REMOTE}" not in body["device_keys"]  # known server, unknown user: no failure
    assert set(body["failures"]) == {"down.example", "slow.example"}
    # One request per server, whatever the number of its users.
    assert peer.calls.count("/_matrix/federation/v1/user/keys/query") == 1

    claimed = await alice.ok("POST", "/_matrix/client/v3/keys/claim", {"timeout": 1500, "one_time_keys": {
        BOB: {"BOBDEV": "signed_curve25519"}, "@carol:down.example": {"C": "signed_curve25519"}}})
    assert claimed["one_time_keys"] == {BOB: {"BOBDEV": {"signed_curve25519:AAAA": bob_otk()}}}
    assert set(claimed["failures"]) == {"down.example"}
    for bad in ({"device_keys": {"not-a-user": []}}, {"device_keys": {BOB: "all"}}, {"timeout": "soon"}):
        resp = await alice.post("/_matrix/client/v3/keys/query", bad)
        assert resp.status_code == 400 and resp.json()["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), bad


async def test_remote_users_without_federation_are_failures(client: MatrixClient) -> None:
    alice = await client.register("alice")
    body = await alice.ok("POST", "/_matrix/client/v3/keys/query", {"device_keys": {BOB: []}})
    assert body["device_keys"] == {} and set(body["failures"]) == {REMOTE}


@FED_ON
async def test_device_lists_of_users_sharing_a_room_are_cached_until_changed(
        client: MatrixClient, hs: Homeserver) -> None:
    peer = Peer()
    use_peer(hs, peer)
    alice = await client.register("alice")
    room_id = await alice.create_room()
    # Bob joined over federation (the join itself is another part's business): his membership.
    await hs.stores.db.execute(
        "INSERT INTO memberships (room_id, user_id, membership, event_id, stream_ordering)"
        " VALUES ($1,$2,'join','$bobjoin',0)", room_id, BOB)
    query = {"device_keys": {BOB: []}}
    first = await alice.ok("POST", "/_matrix/client/v3/keys/query", query)
    second = await alice.ok("POST", "/_matrix/client/v3/keys/query", {"device_keys": {BOB: ["BOBDEV"]}})
    assert first["device_keys"][BOB] == second["device_keys"][BOB] == {"BOBDEV": bob_device_keys()}
    assert second["master_keys"][BOB] == bob_master()
    assert peer.calls.count("/_matrix/federation/v1/user/keys/query") == 1  # the second came from the cache
    since = (await alice.sync())["next_batch"]
    await hs.keys.remote_device_list_changed(BOB, 7, [6])
    changed = await alice.sync(since=since, timeout=5000)
    assert BOB in changed["device_lists"]["changed"]
    await alice.ok("POST", "/_matrix/client/v3/keys/query", query)
    assert peer.calls.count("/_matrix/federation/v1/user/keys/query") == 2  # stale: fetched again
    # A user nobody here shares a room with any more is not served from the cache, nor cached.
    await hs.stores.db.execute("DELETE FROM memberships WHERE user_id = $1", BOB)
    for _ in range(2):
        await alice.ok("POST", "/_matrix/client/v3/keys/query", query)
    assert peer.calls.count("/_matrix/federation/v1/user/keys/query") == 4


@FED_ON
async def test_federation_user_key_endpoints(client: MatrixClient, hs: Homeserver) -> None:
    use_transport(hs, remote_keys_handler([]))
    alice = await client.register("alice")
    keys = await _upload_alice(alice)
    me = hs.server_name

    async def fed(method: str, uri: str, body: Any = None) -> httpx.Response:
        return await client.request(method, uri, body, headers=signed(REMOTE_KEY, REMOTE, me, method, uri, body))

    uri = f"/_matrix/federation/v1/user/devices/{quote(alice.user_id or '')}"
    assert (await client.get(uri)).status_code == 401
    devices = await fed("GET", uri)
    assert devices.status_code == 200, devices.text
    got = devices.json()
    assert got["user_id"] == alice.user_id and got["stream_id"] > 0
    assert [(d["device_id"], d["keys"]) for d in got["devices"]] == [(alice.device_id, keys)]
    uri = f"/_matrix/federation/v1/user/devices/{quote(BOB)}"
    assert (await fed("GET", uri)).status_code == 400
    uri = f"/_matrix/federation/v1/user/devices/{quote('@ghost:' + me)}"
    assert (await fed("GET", uri)).json()["devices"] == []

    uri = "/_matrix/federation/v1/user/keys/query"
    answer = await fed("POST", uri, {"device_keys": {alice.user_id: []}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["device_keys"][alice.user_id][alice.device_id]["keys"] == keys["keys"]
    assert "failures" not in answer.json()
    for bad in ({"device_keys": {BOB: []}}, {"device_keys": []}, {}):
        resp = await fed("POST", uri, bad)
        assert resp.status_code == 400 and resp.json()["errcode"].startswith("M_"), bad

    uri = "/_matrix/federation/v1/user/keys/claim"
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    first = (await fed("POST", uri, want)).json()
    assert list(first["one_time_keys"][alice.user_id][alice.device_id]) == ["signed_curve25519:OTK1"]
    assert (await fed("POST", uri, want)).json() == {"one_time_keys": {}}  # handed out once
    resp = await fed("POST", uri, {"one_time_keys": {BOB: {"X": "signed_curve25519"}}})
    assert resp.status_code == 400


@FED_ON
async def test_federation_space_hierarchy(client: MatrixClient, hs: Homeserver) -> None:
    use_transport(hs, remote_keys_handler([]))
    alice = await client.register("alice")
    space = await alice.create_room(preset="public_chat", name="Space", creation_content={"type": "m.space"})
    public = await alice.create_room(preset="public_chat", name="Open room")
    private = await alice.create_room(preset="private_chat", name="Secret room")
    unknown = f"!elsewhere:{REMOTE}"
    for child, suggested in ((public, True), (private, False), (unknown, True)):
        await alice.ok("PUT", f"/_matrix/client/v3/rooms/{space}/state/m.space.child/{quote(child)}",
                       {"via": [hs.server_name], "suggested": suggested})
    me = hs.server_name

    async def fed(uri: str) -> httpx.Response:
        return await client.get(uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", uri))

    resp = await fed(f"/_matrix/federation/v1/hierarchy/{quote(space)}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["room"]["room_id"] == space and body["room"]["room_type"] == "m.space"
    assert body["room"]["name"] == "Space" and body["room"]["join_rule"] == "public"
    assert {c["state_key"] for c in body["room"]["children_state"]} == {public, private, unknown}
    assert [c["room_id"] for c in body["children"]] == [public]
    assert body["children"][0]["name"] == "Open room" and body["children"][0]["num_joined_members"] == 1
    assert body["inaccessible_children"] == [private]
    suggested = (await fed(f"/_matrix/federation/v1/hierarchy/{quote(space)}?suggested_only=true")).json()
    assert {c["state_key"] for c in suggested["room"]["children_state"]} == {public, unknown}
    for room, status in ((private, 404), ("!nope:" + me, 404), ("not-a-room", 400)):
        resp = await fed(f"/_matrix/federation/v1/hierarchy/{quote(room)}")
        assert resp.status_code == status and resp.json()["errcode"].startswith("M_"), room
