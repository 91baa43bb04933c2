"""The Application Service API against a real server and a real AS built with mautrix: the AS
registers its namespaced users (exclusive against everyone else), sends as them through
identity assertion, pings and is pinged, receives the room's events in transactions, and after
an outage gets the queued transactions in order; it opted in to ephemeral data, so typing,
receipts and presence reach it, and so do to-device messages for its users (MSC4203); and it
answers the third-party lookups clients make through the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiohttp import web
from mautrix.appservice import AppService
from mautrix.types import Event

from tests.e2e.conftest import free_port, spawn_server, stop_server, wait_ready
from tests.plugins.conftest import SERVER_NAME, User, until
from tests.spec_schema import validate_response

AS_TOKEN = "as-token-bridge-0123456789"
HS_TOKEN = "hs-token-bridge-0123456789"


class Bridge:
    def __init__(self, base: str, port: int) -> None:
        self.port = port
        self.events: list[dict[str, Any]] = []
        self.to_device: list[dict[str, Any]] = []
        self.thirdparty_queries: list[tuple[str, dict[str, str]]] = []
        self.appservice = AppService(server=base, domain=SERVER_NAME, as_token=AS_TOKEN, hs_token=HS_TOKEN,
                                     bot_localpart="bridgebot", id="bridge", ephemeral_events=True,
                                     encryption_events=True)
        self.appservice.matrix_event_handler(self.on_event)
        self.appservice.to_device_handler = self.on_to_device
        self.appservice.query_user = self.query_user
        self.appservice.query_alias = self.query_alias
        # mautrix leaves the third-party endpoints to the bridge: this one bridges "chatnet".
        router = self.appservice.app.router
        router.add_get("/_matrix/app/v1/thirdparty/protocol/{protocol}", self.tp_protocol)
        router.add_get("/_matrix/app/v1/thirdparty/user/{protocol}", self.tp_user)
        router.add_get("/_matrix/app/v1/thirdparty/location/{protocol}", self.tp_location)
        router.add_get("/_matrix/app/v1/thirdparty/user", self.tp_user)
        router.add_get("/_matrix/app/v1/thirdparty/location", self.tp_location)

    def _check(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {HS_TOKEN}":
            raise web.HTTPForbidden()
        self.thirdparty_queries.append((request.path, dict(request.query)))

    async def tp_protocol(self, request: web.Request) -> web.Response:
        self._check(request)
        if request.match_info["protocol"] != "chatnet":
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        return web.json_response({
            "user_fields": ["nick"], "location_fields": ["channel"], "icon": "mxc://example.org/chat",
            "field_types": {"nick": {"regexp": "[a-z]+", "placeholder": "carol"},
                            "channel": {"regexp": "#[a-z]+", "placeholder": "#lobby"}},
            "instances": [{"network_id": "main", "desc": "Chatnet main", "fields": {}}]})

    async def tp_user(self, request: web.Request) -> web.Response:
        self._check(request)
        nick = request.query.get("nick") or request.query.get("userid", "").removeprefix("@bridge_").split(":")[0]
        return web.json_response([{"userid": f"@bridge_{nick}:{SERVER_NAME}", "protocol": "chatnet",
                                   "fields": {"nick": nick}}])

    async def tp_location(self, request: web.Request) -> web.Response:
        self._check(request)
        channel = request.query.get("channel") or "#lobby"
        return web.json_response([{"alias": f"#bridge_lobby:{SERVER_NAME}", "protocol": "chatnet",
                                   "fields": {"channel": channel}}])

    async def on_to_device(self, event: Any) -> None:
        self.to_device.append(event.serialize())

    async def query_user(self, user_id: str) -> dict[str, Any] | None:
        """The homeserver asks about an unknown user of our namespace: create it."""
        await self.appservice.intent.user(user_id).ensure_registered()
        return {"created": True}  # mautrix answers 404 for a falsy result

    async def query_alias(self, alias: str) -> dict[str, Any] | None:
        localpart = alias[1:].split(":")[0]
        if localpart != "bridge_lobby":
            return None
        await self.appservice.intent.create_room(alias_localpart=localpart)
        return {"created": True}

    async def on_event(self, event: Event) -> None:
        self.events.append(event.serialize())

    def bodies(self, room_id: str) -> list[str]:
        return [e["content"].get("body", "") for e in self.events
                if e.get("room_id") == room_id and e.get("type") == "m.room.message"]


@pytest.fixture
async def as_server(tmp_path: Path, backend: str) -> AsyncIterator[tuple[httpx.AsyncClient, Bridge]]:
    as_port = free_port()
    registration = tmp_path / "bridge.yaml"
    registration.write_text(
        f"id: bridge\nurl: http://127.0.0.1:{as_port}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\n"
        "sender_localpart: bridgebot\nrate_limited: false\nreceive_ephemeral: true\nprotocols: [chatnet]\n"
        "namespaces:\n  users:\n"
        f"    - exclusive: true\n      regex: '@bridge_.*:{SERVER_NAME.replace('.', '[.]')}'\n"
        f"  aliases:\n    - exclusive: true\n      regex: '#bridge_.*:{SERVER_NAME.replace('.', '[.]')}'\n"
        "  rooms: []\n")
    proc, base = spawn_server(tmp_path, backend, SERVER_NAME,
                              PARLEY_PLUGINS__APP_SERVICE_CONFIG_FILES=str(registration))
    try:
        wait_ready(proc, base, tmp_path / "server.log")
        bridge = Bridge(base, as_port)
        await bridge.appservice.start("127.0.0.1", as_port)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                yield http, bridge
        finally:
            await bridge.appservice.stop()
    finally:
        stop_server(proc)


async def _register(http: httpx.AsyncClient, name: str) -> User:
    r = await http.post("/_matrix/client/v3/register",
                        json={"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
    assert r.status_code == 200, r.text
    return User(http, r.json()["user_id"], r.json()["access_token"])


async def test_mautrix_bridge(as_server: tuple[httpx.AsyncClient, Bridge]) -> None:
    http, bridge = as_server
    alice = await _register(http, "alice")
    # The namespace is exclusive: nobody else may take it.
    r = await http.post("/_matrix/client/v3/register",
                        json={"username": "bridge_eve", "password": "pw", "auth": {"type": "m.login.dummy"}})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_EXCLUSIVE")

    assert await bridge.appservice.ping_self("ping-1") >= 0

    puppet_id = f"@bridge_alice:{SERVER_NAME}"
    puppet = bridge.appservice.intent.user(puppet_id)
    await puppet.ensure_registered()
    room = await alice.create_room(invite=[puppet_id])
    await puppet.join_room(room)
    await puppet.send_text(room, "hello from the bridge")
    msg = await alice.message_from(room, puppet_id, "hello from the bridge")
    assert msg["sender"] == puppet_id

    # Identity assertion only for registered users of the namespace.
    for user_id in (f"@bridge_ghost:{SERVER_NAME}", alice.user_id):
        r = await http.get("/_matrix/client/v3/account/whoami", params={"user_id": user_id},
                           headers={"Authorization": f"Bearer {AS_TOKEN}"})
        assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN"), user_id
    r = await http.get("/_matrix/client/v3/account/whoami", params={"user_id": puppet_id},
                       headers={"Authorization": f"Bearer {AS_TOKEN}"})
    assert r.json()["user_id"] == puppet_id

    # Transactions: the room has a namespaced member, so its events are pushed.
    await alice.send_text(room, "to the bridge")
    await until(lambda: _has(bridge, room, "to the bridge"))

    # An outage: events queue up and arrive in order when the AS is back.
    await bridge.appservice.stop()
    for i in range(3):
        await alice.send_text(room, f"queued {i}")
    await bridge.appservice.start("127.0.0.1", bridge.port)

    async def all_queued() -> bool:
        return len([b for b in bridge.bodies(room) if b.startswith("queued")]) >= 3
    await until(all_queued, timeout=60)
    queued = [b for b in bridge.bodies(room) if b.startswith("queued")]
    assert queued == ["queued 0", "queued 1", "queued 2"]
    assert bridge.bodies(room).index("to the bridge") < bridge.bodies(room).index("queued 0")


async def _has(bridge: Bridge, room: str, body: str) -> bool:
    await asyncio.sleep(0)
    return body in bridge.bodies(room)


async def test_user_and_alias_queries_and_exclusive_aliases(as_server: tuple[httpx.AsyncClient, Bridge]) -> None:
    http, _ = as_server
    alice = await _register(http, "alice")
    bob_id = f"@bridge_bob:{SERVER_NAME}"
    profile = await alice.call("GET", f"/_matrix/client/v3/profile/{quote(bob_id)}")
    assert isinstance(profile, dict)
    lobby = await alice.call("GET", f"/_matrix/client/v3/directory/room/{quote(f'#bridge_lobby:{SERVER_NAME}')}")
    assert lobby["room_id"].startswith("!")
    err = await alice.call("GET", f"/_matrix/client/v3/directory/room/{quote(f'#bridge_none:{SERVER_NAME}')}",
                           expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    err = await alice.call("GET", f"/_matrix/client/v3/profile/{quote(f'@nobody:{SERVER_NAME}')}", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    room = await alice.create_room()
    err = await alice.call("PUT", f"/_matrix/client/v3/directory/room/{quote(f'#bridge_mine:{SERVER_NAME}')}",
                           {"room_id": room}, expect=400)
    assert err["errcode"] == "M_EXCLUSIVE"
    await alice.call("PUT", f"/_matrix/client/v3/directory/room/{quote(f'#mine:{SERVER_NAME}')}", {"room_id": room})


async def test_appservice_registration_needs_its_token(as_server: tuple[httpx.AsyncClient, Bridge]) -> None:
    http, _ = as_server
    body = {"type": "m.login.application_service", "username": "bridge_x"}
    r = await http.post("/_matrix/client/v3/register", json=body)
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    r = await http.post("/_matrix/client/v3/register", json=body, headers={"Authorization": "Bearer wrong"})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    r = await http.post("/_matrix/client/v3/register", json={**body, "username": "outsider"},
                        headers={"Authorization": f"Bearer {AS_TOKEN}"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_EXCLUSIVE")
    r = await http.post(f"/_matrix/client/v1/appservice/{quote('other')}/ping", json={},
                        headers={"Authorization": f"Bearer {AS_TOKEN}"})
    assert r.status_code == 403


async def test_ephemeral_to_device_and_thirdparty(as_server: tuple[httpx.AsyncClient, Bridge]) -> None:
    http, bridge = as_server
    alice = await _register(http, "alice")
    # A namespaced user with a device, registered by the AS itself.
    r = await http.post("/_matrix/client/v3/register", json={"type": "m.login.application_service",
                                                              "username": "bridge_carol"},
                        headers={"Authorization": f"Bearer {AS_TOKEN}"})
    assert r.status_code == 200, r.text
    carol = User(http, r.json()["user_id"], r.json()["access_token"])
    device = r.json()["device_id"]
    room = await alice.create_room(invite=[carol.user_id])
    await carol.call("POST", f"/_matrix/client/v3/join/{quote(room)}", {})
    event_id = await alice.send_text(room, "read me")
    await until(lambda: _has(bridge, room, "read me"))

    await alice.call("PUT", f"/_matrix/client/v3/rooms/{quote(room)}/typing/{quote(alice.user_id)}",
                     {"typing": True, "timeout": 30000})
    await alice.call("POST", f"/_matrix/client/v3/rooms/{quote(room)}/receipt/m.read/{quote(event_id)}", {})
    await alice.call("PUT", f"/_matrix/client/v3/presence/{quote(alice.user_id)}/status",
                     {"presence": "online", "status_msg": "bridging"})

    def edu(kind: str) -> list[dict[str, Any]]:
        return [e for e in bridge.events if e.get("type") == kind]

    async def typing() -> bool:
        await asyncio.sleep(0)
        return any(e["room_id"] == room and alice.user_id in e["content"]["user_ids"] for e in edu("m.typing"))

    async def receipt() -> bool:
        await asyncio.sleep(0)
        return any(e["room_id"] == room and alice.user_id in e["content"].get(event_id, {}).get("m.read", {})
                   for e in edu("m.receipt"))

    async def presence() -> bool:
        await asyncio.sleep(0)
        return any(e["sender"] == alice.user_id and e["content"].get("status_msg") == "bridging"
                   for e in edu("m.presence"))
    await until(typing)
    await until(receipt)
    await until(presence)

    # To-device messages for the AS's users reach it, addressed; carol is exclusively the AS's,
    # so once the AS has them they are gone from her inbox.
    await alice.call("PUT", "/_matrix/client/v3/sendToDevice/org.example.hello/t1",
                     {"messages": {carol.user_id: {device: {"hello": "carol"}}}})

    async def to_device() -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return [e for e in bridge.to_device if e.get("type") == "org.example.hello"]
    (msg,) = await until(to_device)
    assert (msg["sender"], msg["to_user_id"], msg["to_device_id"]) == (alice.user_id, carol.user_id, device)
    assert msg["content"] == {"hello": "carol"}

    async def inbox_empty() -> bool:
        out = await carol.call("GET", "/_matrix/client/v3/sync?timeout=0")
        return not out.get("to_device", {}).get("events")
    await until(inbox_empty)

    # Third-party lookups go to the AS that bridges the protocol.
    path = "/_matrix/client/v3/thirdparty/protocols"
    protocols = await alice.call("GET", path)
    validate_response("GET", path, 200, protocols)
    assert list(protocols) == ["chatnet"]
    assert protocols["chatnet"]["instances"][0]["instance_id"] == "bridge|main"
    path = "/_matrix/client/v3/thirdparty/protocol/chatnet"
    validate_response("GET", path, 200, await alice.call("GET", path))
    err = await alice.call("GET", "/_matrix/client/v3/thirdparty/protocol/ircnet", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    users = await alice.call("GET", "/_matrix/client/v3/thirdparty/user/chatnet?nick=carol")
    validate_response("GET", "/_matrix/client/v3/thirdparty/user/chatnet", 200, users)
    assert users == [{"userid": carol.user_id, "protocol": "chatnet", "fields": {"nick": "carol"}}]
    assert ("/_matrix/app/v1/thirdparty/user/chatnet", {"nick": "carol"}) in bridge.thirdparty_queries
    locations = await alice.call("GET", "/_matrix/client/v3/thirdparty/location/chatnet?channel=%23lobby")
    validate_response("GET", "/_matrix/client/v3/thirdparty/location/chatnet", 200, locations)
    assert locations[0]["fields"] == {"channel": "#lobby"}
    lobby = quote(f"#bridge_lobby:{SERVER_NAME}")
    by_alias = await alice.call("GET", f"/_matrix/client/v3/thirdparty/location?alias={lobby}")
    assert by_alias[0]["alias"] == f"#bridge_lobby:{SERVER_NAME}"
    by_id = await alice.call("GET", f"/_matrix/client/v3/thirdparty/user?userid={quote(carol.user_id)}")
    assert by_id[0]["userid"] == carol.user_id
    err = await alice.call("GET", "/_matrix/client/v3/thirdparty/location", expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
