"""Rooms of every supported version (1-12): create, join, invite, send, redact, paginate, sync."""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

import pytest

from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
ALL_VERSIONS = [str(v) for v in range(1, 13)]
ID_FORMATS = {
    "legacy": re.compile(r"^\$[A-Za-z0-9_\-]+:test\.parley$"),
    "standard": re.compile(r"^\$[A-Za-z0-9+/]{43}$"),
    "urlsafe": re.compile(r"^\$[A-Za-z0-9_\-]{43}$"),
}


def _id_format(version: str) -> str:
    n = int(version)
    return "legacy" if n <= 2 else "standard" if n == 3 else "urlsafe"


def test_every_version_is_known() -> None:
    assert sorted(KNOWN_ROOM_VERSIONS, key=int) == ALL_VERSIONS


async def test_capabilities_list_every_version_as_stable(client: MatrixClient) -> None:
    alice = await client.register()
    caps = (await alice.ok("GET", f"{V3}/capabilities"))["capabilities"]["m.room_versions"]
    assert caps["default"] == "12"
    assert caps["available"] == {v: "stable" for v in ALL_VERSIONS}


@pytest.mark.parametrize("version", ALL_VERSIONS)
async def test_room_lifecycle_in_every_version(client: MatrixClient, version: str) -> None:
    alice = await client.register()
    bob = await client.register()
    carol = await client.register()
    room = await alice.create_room(room_version=version, preset="public_chat", name="Versions")
    assert room.startswith("!")
    assert (":" in room) == (version != "12")

    state = {(e["type"], e["state_key"]): e for e in await alice.ok("GET", f"{V3}/rooms/{room}/state")}
    create = state[("m.room.create", "")]
    assert create["content"]["room_version"] == version
    assert create["content"].get("creator") == (alice.user_id if int(version) <= 10 else None)
    for ev in state.values():
        assert ID_FORMATS[_id_format(version)].match(ev["event_id"]), ev["event_id"]

    # join (public room), invite + join, messages from all three
    await bob.ok("POST", f"{V3}/join/{quote(room)}", {})
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": carol.user_id})
    invited = await carol.sync()
    assert room in invited["rooms"]["invite"]
    await carol.ok("POST", f"{V3}/rooms/{room}/join", {})
    sent = [await c.send_text(room, f"hello from {i}") for i, c in enumerate((alice, bob, carol))]
    for eid in sent:
        assert ID_FORMATS[_id_format(version)].match(eid), eid
    members = await alice.ok("GET", f"{V3}/rooms/{room}/joined_members")
    assert set(members["joined"]) == {alice.user_id, bob.user_id, carol.user_id}

    # each message can be fetched by its ID (percent-encoded: v3 IDs may hold '/' and '+')
    for eid in sent:
        ev = await bob.ok("GET", f"{V3}/rooms/{room}/event/{quote(eid, safe='')}")
        assert ev["event_id"] == eid and ev["room_id"] == room

    # alice (PL 100) redacts bob's message; the stored event loses its body
    red = await alice.ok("PUT", f"{V3}/rooms/{room}/redact/{quote(sent[1], safe='')}/r1", {"reason": "x"})
    redacted = await carol.ok("GET", f"{V3}/rooms/{room}/event/{quote(sent[1], safe='')}")
    assert redacted["content"] == {}
    assert redacted["unsigned"]["redacted_because"]["event_id"] == red["event_id"]
    because = redacted["unsigned"]["redacted_because"]
    assert because["redacts"] == sent[1] and because["content"]["redacts"] == sent[1]
    # bob may not redact alice's message (redact level 50)
    resp = await bob.put(f"{V3}/rooms/{room}/redact/{quote(sent[0], safe='')}/r2", {})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"

    # backwards pagination returns everything, newest first, ending at the create event
    chunk: list[dict] = []
    params: dict[str, str] = {"dir": "b", "limit": "4"}
    for _ in range(20):
        page = await carol.ok("GET", f"{V3}/rooms/{room}/messages", params=params)
        chunk.extend(page["chunk"])
        if "end" not in page:
            break
        params["from"] = page["end"]
    ids = [e["event_id"] for e in chunk]
    assert ids[0] == red["event_id"]
    assert ids[-1] == create["event_id"]
    assert ids.index(sent[2]) < ids.index(sent[1]) < ids.index(sent[0])
    assert len(ids) == len(set(ids))

    # the timeline in sync carries the same events
    timeline = (await bob.sync())["rooms"]["join"][room]["timeline"]["events"]
    assert red["event_id"] in [e["event_id"] for e in timeline]


@pytest.mark.parametrize("version", ["1", "3", "6"])
async def test_context_and_receipts_with_encoded_event_ids(client: MatrixClient, version: str) -> None:
    """Event IDs in URL paths are percent-encoded; a v3 ID with '/' stays one path segment."""
    alice = await client.register()
    room = await alice.create_room(room_version=version)
    eid = ""
    for _ in range(60):  # each v3 ID holds a '/' with probability ~1/2
        eid = await alice.send_text(room, secrets.token_hex(4))
        if version != "3" or "/" in eid:
            break
    assert version != "3" or "/" in eid
    ctx = await alice.ok("GET", f"{V3}/rooms/{room}/context/{quote(eid, safe='')}")
    assert ctx["event"]["event_id"] == eid
    await alice.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{quote(eid, safe='')}", {})
    red = await alice.ok("PUT", f"{V3}/rooms/{room}/redact/{quote(eid, safe='')}/t", {})
    ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{quote(eid, safe='')}")
    assert ev["unsigned"]["redacted_because"]["event_id"] == red["event_id"]


@pytest.mark.parametrize("version", ["1", "5", "6", "10", "12"])
async def test_canonical_json_limits_on_send(client: MatrixClient, version: str) -> None:
    """Floats and integers beyond ±(2^53-1) are refused with M_BAD_JSON: enforced from room v6
    (rooms/fragments/v6-canonical-json.md), and refused from local clients in older rooms too."""
    alice = await client.register()
    room = await alice.create_room(room_version=version)
    for bad in (b'{"body": 9007199254740992}', b'{"body": -9007199254740992}', b'{"body": 1.1}',
                b'{"body": 2.0}', b'{"body": {"deep": [-0.0]}}'):
        resp = await alice.request("PUT", f"{V3}/rooms/{room}/send/m.test/{secrets.token_hex(4)}", raw=bad,
                                   headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON", (bad, resp.text)
    resp = await alice.request("POST", f"{V3}/rooms/{room}/send/m.test", raw=b'{"body": 1.5}',
                               headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    resp = await alice.put(f"{V3}/rooms/{room}/state/m.test", {"n": 0.5})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    ok = await alice.ok("POST", f"{V3}/rooms/{room}/send/m.test", {"body": 9007199254740991})
    ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{quote(ok['event_id'], safe='')}")
    assert ev["content"] == {"body": 9007199254740991}


async def test_create_room_version_validation(client: MatrixClient) -> None:
    alice = await client.register()
    for version, code in ((1, "M_BAD_JSON"), (None, "M_BAD_JSON"), ("13", "M_UNSUPPORTED_ROOM_VERSION"),
                          ("1.0", "M_UNSUPPORTED_ROOM_VERSION"), ("", "M_UNSUPPORTED_ROOM_VERSION")):
        resp = await alice.post(f"{V3}/createRoom", {"room_version": version})
        assert resp.status_code == 400 and resp.json()["errcode"] == code, (version, resp.text)
    # creation_content cannot override the version
    room = await alice.create_room(room_version="2", creation_content={"room_version": "11"})
    create = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.create")
    assert create["room_version"] == "2" and create["creator"] == alice.user_id


async def test_post_send_without_txn_is_not_idempotent(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    a = await alice.ok("POST", f"{V3}/rooms/{room}/send/m.room.message", {"msgtype": "m.text", "body": "x"})
    b = await alice.ok("POST", f"{V3}/rooms/{room}/send/m.room.message", {"msgtype": "m.text", "body": "x"})
    assert a["event_id"] != b["event_id"]


@pytest.mark.parametrize(("version", "allowed"), [("6", False), ("7", True), ("10", True)])
async def test_knock_join_rule_only_from_v7(client: MatrixClient, version: str, allowed: bool) -> None:
    """Setting the `knock` join rule is an ordinary state event in every version, but only v7+
    rooms give it meaning: there an invited user still joins; in v6 `knock` is not `invite`, so
    nobody can join through it (rooms/v7.md rule 4.3.4 vs v3-auth-rules.md rule 5.2)."""
    alice = await client.register()
    bob = await client.register()
    room = await alice.create_room(room_version=version)
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.join_rules", {"join_rule": "knock"})
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    resp = await bob.post(f"{V3}/rooms/{room}/join", {})
    if allowed:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize(("version", "status"), [("9", 200), ("10", 403)])
async def test_string_power_levels_until_v10(client: MatrixClient, version: str, status: int) -> None:
    alice = await client.register()
    bob = await client.register()
    room = await alice.create_room(room_version=version, preset="public_chat")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    pl = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.power_levels")
    pl["users"][bob.user_id] = " +050 "
    resp = await alice.put(f"{V3}/rooms/{room}/state/m.room.power_levels", pl)
    assert resp.status_code == status, resp.text
    if status == 200:
        # bob now has level 50: he may set the topic (state_default 50)
        await bob.ok("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "mine"})
    else:
        assert resp.json()["errcode"] == "M_FORBIDDEN"


async def test_string_notification_levels_in_v9_push_rules(client: MatrixClient) -> None:
    """`notifications.room` as an integer string (rooms v1-v9) still gates @room highlights."""
    alice = await client.register()
    bob = await client.register()
    room = await alice.create_room(room_version="9", preset="public_chat", power_level_content_override={
        "notifications": {"room": " 60"}, "users": {alice.user_id: 100, bob.user_id: "50"}})
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    a0, b0 = await alice.sync(), await bob.sync()
    everyone = {"msgtype": "m.text", "body": "hi all", "m.mentions": {"room": True}}
    await bob.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/b1", everyone)
    await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/a1", everyone)
    a1 = await alice.sync(since=a0["next_batch"])
    b1 = await bob.sync(since=b0["next_batch"])
    assert a1["rooms"]["join"][room]["unread_notifications"]["highlight_count"] == 0  # bob: 50 < 60
    assert b1["rooms"]["join"][room]["unread_notifications"]["highlight_count"] == 1  # alice: 100
