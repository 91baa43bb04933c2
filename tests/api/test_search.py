"""POST /_matrix/client/v3/search on SQLite (FTS5) and PostgreSQL (tsvector): ranking, order,
pagination, context, groups, state, edits, redactions, encrypted events, history visibility and
bad input. Every response is checked against the spec's schema by MatrixClient."""

from __future__ import annotations

from typing import Any

from homeserver.app import Homeserver
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


def _body(term: str, **room_events: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": term, **room_events}}}


async def search(user: MatrixClient, term: str, next_batch: str | None = None, **kw: Any) -> dict[str, Any]:
    params = {"next_batch": next_batch} if next_batch is not None else None
    out = await user.ok("POST", f"{V3}/search", _body(term, **kw), params=params)
    return out["search_categories"]["room_events"]  # type: ignore[no-any-return]


async def bodies(user: MatrixClient, term: str, **kw: Any) -> list[str]:
    return [r["result"]["content"].get("body") for r in (await search(user, term, **kw))["results"]]


async def _room(owner: MatrixClient, visibility: str) -> str:
    return await owner.create_room(preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": visibility}}])


async def test_ranked_and_recent_results_with_highlights(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room(preset="public_chat", name="Deploy desk", topic="Where deployments happen")
    first = await alice.send_text(room, "The deployment of the payments service failed at noon")
    await alice.send_text(room, "lunch plans: tacos")
    best = await alice.send_text(room, "deploy deploy deploy: we deploy the deployment again")
    last = await alice.send_text(room, "Deployed!")

    recent = await search(alice, "deploy", order_by="recent", keys=["content.body"])
    assert [r["result"]["event_id"] for r in recent["results"]] == [last, best, first]
    assert recent["count"] == 3 and "next_batch" not in recent
    assert {"deploy", "Deployed", "deployment"} <= set(recent["highlights"])

    ranked = await search(alice, "deploy", keys=["content.body"])
    assert ranked["results"][0]["result"]["event_id"] == best
    ranks = [r["rank"] for r in ranked["results"]]
    assert ranks == sorted(ranks, reverse=True)

    # Words match as prefixes, alike on both databases (no stemming, no stop words).
    assert await bodies(alice, "deployments", keys=["content.body"]) == []
    assert await bodies(alice, "the payment", order_by="recent") == [
        "The deployment of the payments service failed at noon"]
    # All words must occur; phrases match in order.
    assert await bodies(alice, "payments noon") == ["The deployment of the payments service failed at noon"]
    assert await bodies(alice, '"noon payments"') == []
    assert await bodies(alice, "tacos deploy") == []
    # Names and topics are searchable under their own keys.
    named = await search(alice, "desk", keys=["content.name"])
    assert [r["result"]["type"] for r in named["results"]] == ["m.room.name"]
    assert [r["result"]["type"] for r in (await search(alice, "happen", keys=["content.topic"]))["results"]] \
        == ["m.room.topic"]
    assert await bodies(alice, "desk", keys=["content.body"]) == []
    # Filters: senders, rooms, types.
    bob = await client.register()
    await bob.ok("POST", f"{V3}/join/{room}", {})
    await bob.send_text(room, "deploy from bob")
    assert await bodies(alice, "deploy", order_by="recent", filter={"senders": [bob.user_id]}) == ["deploy from bob"]
    assert "deploy from bob" not in await bodies(alice, "deploy", filter={"not_senders": [bob.user_id]})
    assert await bodies(alice, "deploy", filter={"not_rooms": [room]}) == []
    typed = await search(alice, "deploy", filter={"types": ["m.room.topic"]})
    assert [r["result"]["content"]["topic"] for r in typed["results"]] == ["Where deployments happen"]
    # Nothing to search for.
    empty = await search(alice, "  ?! ")
    assert empty == {"results": [], "count": 0, "highlights": []}


async def test_pagination_in_both_orders_with_groups(client: MatrixClient) -> None:
    alice = await client.register()
    rooms = [await alice.create_room(), await alice.create_room()]
    sent = []
    for i in range(7):
        sent.append(await alice.send_text(rooms[i % 2], f"standup note {i}"))
    for order in ("recent", "rank"):
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            page = await search(alice, "standup", token, order_by=order, filter={"limit": 3},
                                groupings={"group_by": [{"key": "room_id"}]})
            pages += 1
            ids = [r["result"]["event_id"] for r in page["results"]]
            seen.extend(ids)
            groups = page["groups"]["room_id"]
            assert sorted(e for g in groups.values() for e in g["results"]) == sorted(ids)
            if "next_batch" not in page:
                break
            assert all("next_batch" in g for g in groups.values())
            token = page["next_batch"]
        assert pages == 3 and sorted(seen) == sorted(sent) and len(set(seen)) == 7, order
        if order == "recent":
            assert seen == list(reversed(sent))
    # A group's own next_batch pages through that room only.
    first = await search(alice, "standup", order_by="recent", filter={"limit": 1},
                         groupings={"group_by": [{"key": "room_id"}]})
    (room_of_first, group), = first["groups"]["room_id"].items()
    rest = await search(alice, "standup", group["next_batch"], order_by="recent", filter={"limit": 10})
    expected = [e for e, i in zip(sent, range(7), strict=True) if rooms[i % 2] == room_of_first]
    assert [r["result"]["event_id"] for r in rest["results"]] == list(reversed(expected))[1:]
    # A token only fits the search it came from.
    r = await alice.post(f"{V3}/search", _body("other"), params={"next_batch": first["next_batch"]})
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"


async def test_context_profiles_and_state(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    room = await alice.create_room(preset="public_chat", name="Ops")
    await alice.ok("PUT", f"{V3}/profile/{alice.user_id}/displayname", {"displayname": "Alice Old"})
    await bob.ok("POST", f"{V3}/join/{room}", {})
    await alice.send_text(room, "one")
    await bob.send_text(room, "two")
    hit = await alice.send_text(room, "the needle is here")
    await bob.send_text(room, "three")
    await alice.ok("PUT", f"{V3}/profile/{alice.user_id}/displayname", {"displayname": "Alice New"})
    out = await search(alice, "needle", event_context={"before_limit": 2, "after_limit": 1, "include_profile": True},
                       include_state=True)
    (res,) = out["results"]
    assert res["result"]["event_id"] == hit
    ctx = res["context"]
    assert [e["content"]["body"] for e in ctx["events_before"]] == ["two", "one"]
    assert [e["content"].get("body") for e in ctx["events_after"]] == ["three"]
    assert ctx["start"] and ctx["end"]
    # Historic profiles: the name Alice had when she sent it.
    assert ctx["profile_info"][alice.user_id]["displayname"] == "Alice Old"
    assert bob.user_id in ctx["profile_info"]
    # The context tokens work with /messages.
    older = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"from": ctx["start"], "dir": "b"})
    assert any(e["type"] == "m.room.create" for e in older["chunk"])
    state = out["state"][room]
    assert any(e["type"] == "m.room.name" and e["content"]["name"] == "Ops" for e in state)


async def test_edits_redactions_and_encrypted_events(client: MatrixClient, hs: Homeserver) -> None:
    alice = await client.register()
    room = await alice.create_room()
    orig = await alice.send_text(room, "meet at the harbour")
    await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/e1", {
        "msgtype": "m.text", "body": "* meet at the lighthouse",
        "m.new_content": {"msgtype": "m.text", "body": "meet at the lighthouse"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": orig}})
    found = await search(alice, "lighthouse")
    assert [r["result"]["event_id"] for r in found["results"]] == [orig]  # the message, not the edit
    assert await bodies(alice, "harbour") == []
    # An edit by someone else does not change what the message is found by.
    mallory = await client.register()
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": mallory.user_id})
    await mallory.ok("POST", f"{V3}/join/{room}", {})
    await mallory.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/m1", {
        "msgtype": "m.text", "body": "* spam", "m.new_content": {"msgtype": "m.text", "body": "spam"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": orig}})
    assert await bodies(alice, "spam") == []
    assert len((await search(alice, "lighthouse"))["results"]) == 1

    # Redacting the edit gives the message back its own text; redacting it removes it.
    edit2 = (await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/e2", {
        "msgtype": "m.text", "body": "* meet at the pier",
        "m.new_content": {"msgtype": "m.text", "body": "meet at the pier"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": orig}}))["event_id"]
    assert len((await search(alice, "pier"))["results"]) == 1
    await alice.ok("PUT", f"{V3}/rooms/{room}/redact/{edit2}/r1", {})
    assert (await search(alice, "pier"))["results"] == []
    assert len((await search(alice, "harbour"))["results"]) == 1
    await alice.ok("PUT", f"{V3}/rooms/{room}/redact/{orig}/r2", {})
    assert (await search(alice, "harbour"))["results"] == []

    # Encrypted events carry no searchable text and never reach the index.
    await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.encrypted/c1", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg",
        "device_id": "DEV", "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA", "session_id": "X"})
    rows = await hs.stores.db.fetch("SELECT type, value FROM event_search WHERE room_id = $1", room)
    assert {r["type"] for r in rows} <= {"m.room.message", "m.room.name", "m.room.topic"}
    assert not any("AwgAEn" in r["value"] for r in rows)
    assert (await search(alice, "AwgAEnACgAkLmt6qF84IK"))["results"] == []


async def test_results_follow_history_visibility(client: MatrixClient) -> None:
    alice = await client.register()
    late, leaver, stranger = await client.register(), await client.register(), await client.register()
    room = await _room(alice, "joined")
    await leaver.ok("POST", f"{V3}/join/{room}", {})
    await alice.send_text(room, "falcon before anyone else joined")
    await late.ok("POST", f"{V3}/join/{room}", {})
    await alice.send_text(room, "falcon while everyone is here")
    await leaver.ok("POST", f"{V3}/rooms/{room}/leave", {})
    await alice.send_text(room, "falcon after the leaver left")
    shared = await _room(alice, "shared")
    await alice.send_text(shared, "falcon in shared history")
    await late.ok("POST", f"{V3}/join/{shared}", {})

    assert set(await bodies(alice, "falcon")) == {
        "falcon before anyone else joined", "falcon while everyone is here", "falcon after the leaver left",
        "falcon in shared history"}
    # Joined later with joined-only history: nothing from before the join (but shared history is).
    assert set(await bodies(late, "falcon")) == {
        "falcon while everyone is here", "falcon after the leaver left", "falcon in shared history"}
    # Left: what they could read while joined, nothing after.
    assert set(await bodies(leaver, "falcon")) == {"falcon before anyone else joined", "falcon while everyone is here"}
    # Never joined: nothing, not even from a public room, and no count either.
    out = await search(stranger, "falcon")
    assert out["results"] == [] and out["count"] == 0
    # Asking for the room by filter does not help a stranger.
    assert await bodies(stranger, "falcon", filter={"rooms": [room, shared]}) == []
    # Counts are of what the user may see.
    assert (await search(leaver, "falcon"))["count"] == 2
    # Invited (not joined) under `invited` history: what came after the invite, with context and
    # state asked for (an invitee may not read those; the search still answers).
    invitee = await client.register()
    inv_room = await _room(alice, "invited")
    await alice.send_text(inv_room, "falcon before the invite")
    await alice.ok("POST", f"{V3}/rooms/{inv_room}/invite", {"user_id": invitee.user_id})
    await alice.send_text(inv_room, "falcon after the invite")
    got = await search(invitee, "falcon", event_context={"before_limit": 1}, include_state=True)
    assert [r["result"]["content"]["body"] for r in got["results"]] == ["falcon after the invite"]
    # An ignored user's messages are not found.
    await late.ok("PUT", f"{V3}/user/{late.user_id}/account_data/m.ignored_user_list",
                  {"ignored_users": {alice.user_id: {}}})
    assert await bodies(late, "falcon") == []


async def test_bad_input_is_a_matrix_error(client: MatrixClient) -> None:
    alice = await client.register()
    bad: list[tuple[Any, str]] = [
        ({}, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {}}}, "M_MISSING_PARAM"),
        (_body("x", order_by="best"), "M_BAD_JSON"),
        (_body("x", keys=["content.nope"]), "M_BAD_JSON"),
        (_body("x", filter={"limit": "ten"}), "M_BAD_JSON"),
        (_body("x", event_context={"before_limit": -1}), "M_BAD_JSON"),
        (_body("x", groupings={"group_by": [{"key": "state_key"}]}), "M_BAD_JSON"),
    ]
    for body, errcode in bad:
        r = await alice.post(f"{V3}/search", body)
        assert r.status_code == 400 and r.json()["errcode"] == errcode, (body, r.text)
    r = await alice.request("POST", f"{V3}/search", raw=b"{not json")
    assert r.status_code == 400 and r.json()["errcode"] == "M_NOT_JSON"
    for token in ("garbage", "", "x" * 3000):
        r = await alice.post(f"{V3}/search", _body("x"), params={"next_batch": token})
        assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM", token
    r = await alice.post(f"{V3}/search", _body("x"), token="")
    assert r.status_code == 401
    # No category asked for: an empty answer.
    assert await alice.ok("POST", f"{V3}/search", {"search_categories": {}}) == {"search_categories": {}}


async def test_migration_indexes_events_stored_before_it(client: MatrixClient, hs: Homeserver) -> None:
    """A database from before search (no migration 023) gets its messages, names and topics
    indexed when it migrates; edits, redacted and encrypted events are left out."""
    from homeserver.storage.migrate import migrate

    alice = await client.register()
    room = await alice.create_room(name="Heron room", topic="heron topic")
    kept = await alice.send_text(room, "heron sightings at dawn")
    gone = await alice.send_text(room, "heron nest location")
    await alice.ok("PUT", f"{V3}/rooms/{room}/redact/{gone}/r1", {})
    await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/e1", {
        "msgtype": "m.text", "body": "* heron edit", "m.new_content": {"msgtype": "m.text", "body": "heron edit"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": kept}})
    db = hs.stores.db
    if db.dialect == "sqlite":
        await db.execute("DROP TABLE event_search_fts")
    await db.execute("DROP TABLE event_search")
    await db.execute("DELETE FROM schema_version WHERE version = 23")
    await migrate(db)
    rows = await db.fetch("SELECT event_id, key, value FROM event_search ORDER BY stream_ordering")
    assert [(r["key"], r["value"]) for r in rows] == [
        ("content.name", "Heron room"), ("content.topic", "heron topic"), ("content.body", "heron sightings at dawn")]
    found = await search(alice, "heron", order_by="recent")
    assert [r["result"]["event_id"] for r in found["results"]][0] == kept
    assert len(found["results"]) == 3
