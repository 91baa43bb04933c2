"""The event intake for received PDUs, against an in-memory peer that signs with its own key:
accepted, dropped (bad signature), redacted (bad hash), rejected (auth), soft-failed (current
state), gaps filled with get_missing_events or /state_ids, and branches merged by state
resolution."""

from __future__ import annotations

import copy
from typing import Any

from homeserver.app import Homeserver
from homeserver.events.receiver import EventReceiver
from homeserver.protocol.auth_rules import auth_types_for_event
from homeserver.protocol.events import compute_event_id, hash_and_sign_event
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import generate_signing_key, key_id, verify_key_b64
from homeserver.protocol.state_res import resolve_state
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
REMOTE = "remote.test"
BOB = f"@bob:{REMOTE}"
CAROL = f"@carol:{REMOTE}"


class Peer:
    """A remote server: signs events, answers get_event / get_missing_events / state_ids."""

    def __init__(self, hs: Homeserver) -> None:
        self.hs = hs
        self.key = generate_signing_key("peer1")
        self.events: dict[str, dict[str, Any]] = {}
        self.state_before: dict[str, list[str]] = {}
        self.missing_calls = 0

    async def verify_keys(self, server: str, key_ids: list[str], valid_at_ts: int) -> dict[str, str]:
        if server == REMOTE:
            return {key_id(self.key): verify_key_b64(self.key)}
        if server == self.hs.server_name:
            return {key_id(self.hs.signing_key): verify_key_b64(self.hs.signing_key)}
        return {}

    async def get_event(self, origin: str, event_id: str) -> dict[str, Any] | None:
        ev = self.events.get(event_id)
        return copy.deepcopy(ev) if ev else None

    async def get_missing_events(self, origin: str, room_id: str, earliest: list[str],
                                 latest: list[str], limit: int) -> list[dict[str, Any]]:
        self.missing_calls += 1
        # Everything we built that the receiver lacks, walking back from `latest`.
        out, stack, seen = [], list(latest), set(earliest)
        while stack:
            eid = stack.pop()
            for p in self.events.get(eid, {}).get("prev_events", []):
                if p in seen or p not in self.events:
                    continue
                seen.add(p)
                if await self.hs.stores.events.get(p) is None:
                    out.append(copy.deepcopy(self.events[p]))
                    stack.append(p)
        return out[:limit]

    async def get_state_ids(self, origin: str, room_id: str, event_id: str) -> list[str]:
        return list(self.state_before.get(event_id, []))

    async def build(self, room_id: str, etype: str, sender: str, content: dict[str, Any], *,
                    state_key: str | None = None, prev: list[str] | None = None,
                    auth_from: dict[tuple[str, str], str] | None = None) -> tuple[str, dict[str, Any]]:
        """A signed PDU on top of the room's current extremities (or `prev`), with auth events
        chosen from the current state (or `auth_from`)."""
        st = self.hs.stores
        rv = KNOWN_ROOM_VERSIONS[await st.userdata.room_version(room_id) or "12"]
        if prev is None:
            prev = [e.event_id for e in await st.events.forward_extremities(None, room_id)]
        depths = [(await st.events.get(p) or _Depth(self.events[p]["depth"])).depth for p in prev]
        pdu: dict[str, Any] = {"room_id": room_id, "type": etype, "sender": sender, "content": content,
                               "origin_server_ts": 1_700_000_000_000 + len(self.events),
                               "depth": max(depths) + 1, "prev_events": prev}
        if state_key is not None:
            pdu["state_key"] = state_key
        state = auth_from if auth_from is not None else await st.state.current_all(room_id)
        pdu["auth_events"] = [state[k] for k in auth_types_for_event(rv, pdu) if k in state]
        pdu = hash_and_sign_event(pdu, REMOTE, self.key, rv)
        eid = compute_event_id(pdu, rv)
        self.events[eid] = pdu
        return eid, copy.deepcopy(pdu)


class _Depth:
    def __init__(self, depth: int) -> None:
        self.depth = depth


async def _setup(client: MatrixClient, hs: Homeserver) -> tuple[MatrixClient, str, Peer, EventReceiver]:
    alice = await client.register("alice")
    room = await alice.create_room(preset="public_chat")
    peer = Peer(hs)
    return alice, room, peer, EventReceiver(hs.stores, hs.persister, peer, peer)


async def _bodies(alice: MatrixClient, room: str) -> list[str]:
    page = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 100})
    return [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]


async def test_remote_join_and_message(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, peer, rx = await _setup(client, hs)
    since = (await alice.sync())["next_batch"]
    _, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    assert (await rx.receive(REMOTE, join)).outcome == "persisted"
    _, msg = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "hello from afar"})
    assert (await rx.receive(REMOTE, msg)).outcome == "persisted"
    assert (await rx.receive(REMOTE, msg)).outcome == "duplicate"
    members = await alice.ok("GET", f"{V3}/rooms/{room}/joined_members")
    assert BOB in members["joined"]
    section = (await alice.sync(since=since))["rooms"]["join"][room]
    assert [e["content"].get("body") for e in section["timeline"]["events"]][-1] == "hello from afar"
    # a local message now builds on the remote one
    await alice.send_text(room, "welcome")
    ext = await hs.stores.events.forward_extremities(None, room)
    assert len(ext) == 1 and ext[0].pdu["content"]["body"] == "welcome"


async def test_bad_signature_dropped_bad_hash_redacted(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, peer, rx = await _setup(client, hs)
    _, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    await rx.receive(REMOTE, join)
    _, forged = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "forged"})
    forged["signatures"][REMOTE] = {k: "A" * 86 for k in forged["signatures"][REMOTE]}
    got = await rx.receive(REMOTE, forged)
    assert got.outcome == "dropped"
    eid, tampered = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "original"})
    tampered["content"]["body"] = "tampered"  # the signature still covers the redacted form
    got = await rx.receive(REMOTE, tampered)
    assert got.outcome == "persisted" and got.event_id == eid
    ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{eid}")
    assert ev["content"] == {}
    assert "forged" not in await _bodies(alice, room)
    assert (await rx.receive(REMOTE, {"room_id": room, "type": 5})).outcome == "dropped"
    assert (await rx.receive(REMOTE, ["not", "an", "event"])).outcome == "dropped"


async def test_outsider_rejected(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, peer, rx = await _setup(client, hs)
    before = await hs.stores.state.current_all(room)
    _, msg = await peer.build(room, "m.room.message", CAROL, {"msgtype": "m.text", "body": "let me in"})
    got = await rx.receive(REMOTE, msg)
    assert got.outcome == "rejected"
    _, name = await peer.build(room, "m.room.name", CAROL, {"name": "pwned"}, state_key="")
    assert (await rx.receive(REMOTE, name)).outcome == "rejected"
    assert await hs.stores.state.current_all(room) == before
    assert "let me in" not in await _bodies(alice, room)
    state = await alice.ok("GET", f"{V3}/rooms/{room}/state")
    assert not any(e["type"] == "m.room.name" for e in state)


async def test_soft_fail_after_ban(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, peer, rx = await _setup(client, hs)
    join_id, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    await rx.receive(REMOTE, join)
    state_at_join = dict(await hs.stores.state.current_all(room))
    await alice.ok("POST", f"{V3}/rooms/{room}/ban", {"user_id": BOB})
    # Bob's server had not seen the ban: his message cites his join as its only prev event.
    _, msg = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "still here?"},
                              prev=[join_id], auth_from=state_at_join)
    got = await rx.receive(REMOTE, msg)
    assert got.outcome == "soft_failed"
    assert "still here?" not in await _bodies(alice, room)
    ext = {e.event_id for e in await hs.stores.events.forward_extremities(None, room)}
    assert got.event_id not in ext


async def test_gap_filled_with_get_missing_events(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, peer, rx = await _setup(client, hs)
    _, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    await rx.receive(REMOTE, join)
    first, _ = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "one"})
    second, _ = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "two"}, prev=[first])
    _, third = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "three"}, prev=[second])
    assert (await rx.receive(REMOTE, third)).outcome == "persisted"
    assert peer.missing_calls == 1
    assert (await _bodies(alice, room))[:3] == ["three", "two", "one"]


async def test_gap_filled_from_state_ids(client: MatrixClient, hs: Homeserver) -> None:
    """No get_missing_events answer: the state after the missing prev event comes from the
    origin's /state_ids at that prev event plus the prev event itself; unknown events are stored
    as outliers."""
    alice, room, peer, rx = await _setup(client, hs)
    _, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    await rx.receive(REMOTE, join)
    # Bob renames himself and talks, and we never get those events' timeline positions.
    topic_id, _ = await peer.build(room, "m.room.member", BOB, {"membership": "join", "displayname": "Gap"},
                                   state_key=BOB)
    lost, _ = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "lost"}, prev=[topic_id])
    state = dict(await hs.stores.state.current_all(room))
    state[("m.room.member", BOB)] = topic_id
    _, msg = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "after gap"},
                                   prev=[lost], auth_from=state)
    peer.state_before[lost] = list(state.values())  # the state before `lost`: the rename included

    async def no_missing(*_: Any) -> list[dict[str, Any]]:
        return []

    peer.get_missing_events = no_missing  # type: ignore[method-assign]
    got = await rx.receive(REMOTE, msg)
    assert got.outcome == "persisted"
    assert (await hs.stores.events.get(lost)).outlier  # type: ignore[union-attr]
    outlier = await hs.stores.events.get(topic_id)
    assert outlier is not None and outlier.outlier and not outlier.rejected
    assert "after gap" in await _bodies(alice, room)
    # the gap's member event is in the state before (and so after) the event
    assert got.event is not None
    assert (await hs.stores.state.get_state(got.event.state_group))[("m.room.member", BOB)] == topic_id


async def test_branches_merge_by_state_resolution(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, peer, rx = await _setup(client, hs)
    _, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    await rx.receive(REMOTE, join)
    # Alice makes Bob a moderator so his renames are allowed.
    pl = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.power_levels")
    pl["users"][BOB] = 50
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.power_levels", pl)
    fork_point = [e.event_id for e in await hs.stores.events.forward_extremities(None, room)]
    fork_state = dict(await hs.stores.state.current_all(room))
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.name", {"name": "Alice's name"})
    ours = dict(await hs.stores.state.current_all(room))
    # Concurrently, on Bob's server: a rename on top of the fork point.
    theirs_id, theirs = await peer.build(room, "m.room.name", BOB, {"name": "Bob's name"}, state_key="",
                                         prev=fork_point, auth_from=fork_state)
    assert (await rx.receive(REMOTE, theirs)).outcome == "persisted"
    assert len(await hs.stores.events.forward_extremities(None, room)) == 2
    rv: RoomVersion = KNOWN_ROOM_VERSIONS[await hs.stores.userdata.room_version(room) or "12"]
    their_state = dict(fork_state)
    their_state[("m.room.name", "")] = theirs_id
    event_map = {}
    for eid in set(ours.values()) | set(their_state.values()):
        ev = await hs.stores.events.get(eid)
        assert ev is not None
        event_map[eid] = {**ev.pdu, "event_id": eid}
    frontier = {a for e in event_map.values() for a in e["auth_events"]}
    while frontier - event_map.keys():
        for eid in frontier - event_map.keys():
            ev = await hs.stores.events.get(eid)
            assert ev is not None
            event_map[eid] = {**ev.pdu, "event_id": eid}
        frontier = {a for e in event_map.values() for a in e["auth_events"]}
    expected = resolve_state(rv, [ours, their_state], event_map)
    assert await hs.stores.state.current_all(room) == expected
    name = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.name")
    assert name["name"] == event_map[expected[("m.room.name", "")]]["content"]["name"]
    # The next local event merges the branches: one extremity again, state unchanged.
    await alice.send_text(room, "merged")
    assert len(await hs.stores.events.forward_extremities(None, room)) == 1
    assert await hs.stores.state.current_all(room) == expected


async def test_backfilled_history_sits_in_the_past(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, peer, rx = await _setup(client, hs)
    join_id, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    await rx.receive(REMOTE, join)
    state_at_join = dict(await hs.stores.state.current_all(room))
    for i in range(3):
        await alice.send_text(room, f"a{i}")
    since = (await alice.sync())["next_batch"]
    extremities = {e.event_id for e in await hs.stores.events.forward_extremities(None, room)}
    # History we never had: Bob spoke right after joining (fetched later, e.g. by backfill).
    _, old = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "from the past"},
                              prev=[join_id], auth_from=state_at_join)
    got = await rx.receive(REMOTE, old, backfilled=True)
    assert got.outcome == "persisted" and got.event is not None
    assert got.event.stream_ordering < 0
    assert {e.event_id for e in await hs.stores.events.forward_extremities(None, room)} == extremities
    # never new to a sync ...
    assert room not in (await alice.sync(since=since))["rooms"].get("join", {})
    # ... and in its place in the past, page by page
    assert (await _bodies(alice, room))[:4] == ["a2", "a1", "a0", "from the past"]
    seen: list[str] = []
    params: dict[str, Any] = {"dir": "b", "limit": 2}
    for _ in range(10):
        page = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params=params)
        seen += [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]
        if "end" not in page:
            break
        params["from"] = page["end"]
    assert seen == ["a2", "a1", "a0", "from the past"]
    forward = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "f", "limit": 100})
    bodies = [e["content"].get("body") for e in forward["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["from the past", "a0", "a1", "a2"]


async def test_remote_redactions(client: MatrixClient, hs: Homeserver) -> None:
    """A redaction of another room's event is rejected; a redaction of another server's user's
    event by someone without the power to redact is stored but takes no effect."""
    alice, room, peer, rx = await _setup(client, hs)
    _, join = await peer.build(room, "m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    await rx.receive(REMOTE, join)
    other = await alice.create_room(preset="public_chat")
    elsewhere = await alice.send_text(other, "in another room")
    mine = await alice.send_text(room, "alice's words")
    _, cross = await peer.build(room, "m.room.redaction", BOB, {"redacts": elsewhere})
    assert (await rx.receive(REMOTE, cross)).outcome == "rejected"
    _, bold = await peer.build(room, "m.room.redaction", BOB, {"redacts": mine})
    assert (await rx.receive(REMOTE, bold)).outcome == "persisted"
    for r, eid in ((other, elsewhere), (room, mine)):
        ev = await alice.ok("GET", f"{V3}/rooms/{r}/event/{eid}")
        assert ev["content"].get("body"), "the redaction must not have taken effect"
    # Bob's own message, redacted by Bob: applied
    own_id, own = await peer.build(room, "m.room.message", BOB, {"msgtype": "m.text", "body": "oops"})
    await rx.receive(REMOTE, own)
    _, fix = await peer.build(room, "m.room.redaction", BOB, {"redacts": own_id})
    await rx.receive(REMOTE, fix)
    assert (await alice.ok("GET", f"{V3}/rooms/{room}/event/{own_id}"))["content"] == {}
