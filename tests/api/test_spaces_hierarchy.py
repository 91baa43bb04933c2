"""Client `GET /rooms/{roomId}/hierarchy` in-process (SQLite and PostgreSQL): local spaces as
each user may see them, depth and pagination, and children on another server fetched over
federation `/hierarchy` from an in-memory peer."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from homeserver.app import Homeserver
from tests.api.test_federation_api import FED_ON, REMOTE, remote_keys_handler, use_transport
from tests.conftest import MatrixClient

FAR = f"!far:{REMOTE}"
FAR_CHILD = f"!farchild:{REMOTE}"


def chunk(room_id: str, name: str, children: list[str]) -> dict[str, Any]:
    return {"room_id": room_id, "name": name, "num_joined_members": 3, "world_readable": False,
            "guest_can_join": False, "join_rule": "public",
            "children_state": [{"type": "m.space.child", "state_key": c, "content": {"via": [REMOTE]},
                                "sender": f"@zed:{REMOTE}", "origin_server_ts": 1} for c in children]}


class Peer:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/_matrix/federation/v1/hierarchy/"):
            return remote_keys_handler([])(request)
        room_id = path.rsplit("/", 1)[1]
        self.asked.append(room_id)
        if request.headers["host"] == REMOTE and room_id == FAR:
            child = {k: v for k, v in chunk(FAR_CHILD, "Far child", []).items() if k != "children_state"}
            return httpx.Response(200, json={"room": chunk(FAR, "Far away", [FAR_CHILD]), "children": [child],
                                             "inaccessible_children": []})
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})


async def _space(alice: MatrixClient, hs: Homeserver) -> dict[str, str]:
    rooms = {
        "space": await alice.create_room(preset="public_chat", name="Space", creation_content={"type": "m.space"}),
        "open": await alice.create_room(preset="public_chat", name="Open", creation_content={"type": "m.space"}),
        "secret": await alice.create_room(preset="private_chat", name="Secret"),
        "deep": await alice.create_room(preset="public_chat", name="Deep"),
    }

    async def child(parent: str, room_id: str, **extra: Any) -> None:
        await alice.ok("PUT", f"/_matrix/client/v3/rooms/{parent}/state/m.space.child/{quote(room_id)}",
                       {"via": [hs.server_name], **extra})

    await child(rooms["space"], rooms["secret"], order="b")
    await child(rooms["space"], rooms["open"], suggested=True, order="a")
    await child(rooms["open"], rooms["deep"])
    return rooms


def _ids(body: dict[str, Any]) -> list[str]:
    return [r["room_id"] for r in body["rooms"]]


async def test_local_space_as_each_user_sees_it(client: MatrixClient, hs: Homeserver) -> None:
    alice, bob = await client.register("alice"), await client.register("bob")
    r = await _space(alice, hs)
    path = f"/_matrix/client/v1/rooms/{quote(r['space'])}/hierarchy"
    mine = await alice.ok("GET", path)
    assert _ids(mine) == [r["space"], r["open"], r["secret"], r["deep"]]
    assert mine["rooms"][0]["room_type"] == "m.space" and "next_batch" not in mine
    assert {c["state_key"] for c in mine["rooms"][0]["children_state"]} == {r["open"], r["secret"]}
    assert _ids(await bob.ok("GET", path)) == [r["space"], r["open"], r["deep"]]  # not the private room
    assert _ids(await alice.ok("GET", path, params={"max_depth": 1})) == [r["space"], r["open"], r["secret"]]
    assert _ids(await alice.ok("GET", path, params={"suggested_only": "true"})) == [r["space"], r["open"]]
    first = await alice.ok("GET", path, params={"limit": 3})
    assert _ids(first) == [r["space"], r["open"], r["secret"]] and first["next_batch"]
    rest = await alice.ok("GET", path, params={"limit": 3, "from": first["next_batch"]})
    assert _ids(rest) == [r["deep"]] and "next_batch" not in rest
    resp = await bob.get(f"/_matrix/client/v1/rooms/{quote(r['secret'])}/hierarchy")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    for params, status in (({"from": "nonsense"}, 400), ({"limit": "0"}, 400), ({"max_depth": "-1"}, 400)):
        resp = await alice.get(path, params=params)
        assert resp.status_code == status and resp.json()["errcode"] == "M_INVALID_PARAM", params
    resp = await alice.get(f"/_matrix/client/v1/rooms/{quote('!unknown:' + REMOTE)}/hierarchy")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"


@FED_ON
async def test_children_on_other_servers_come_over_federation(client: MatrixClient, hs: Homeserver) -> None:
    peer = Peer()
    use_transport(hs, peer)
    hs.user_hierarchy.remote = hs.federation.hierarchy
    alice = await client.register("alice")
    space = await alice.create_room(preset="public_chat", name="Space", creation_content={"type": "m.space"})
    await alice.ok("PUT", f"/_matrix/client/v3/rooms/{space}/state/m.space.child/{quote(FAR)}", {"via": [REMOTE]})
    body = await alice.ok("GET", f"/_matrix/client/v1/rooms/{quote(space)}/hierarchy")
    assert _ids(body) == [space, FAR, FAR_CHILD]
    assert body["rooms"][1]["name"] == "Far away" and body["rooms"][2]["name"] == "Far child"
    assert peer.asked[0] == FAR
    # A remote space asked for directly (its room ID names its server).
    direct = await alice.ok("GET", f"/_matrix/client/v1/rooms/{quote(FAR)}/hierarchy")
    assert _ids(direct) == [FAR, FAR_CHILD]
