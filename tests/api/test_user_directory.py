"""POST /user_directory/search: who may be found, matching, limits, updates."""

from __future__ import annotations

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
SEARCH = f"{V3}/user_directory/search"


async def _found(c: MatrixClient, term: str, limit: int | None = None) -> list[str]:
    body: dict = {"search_term": term}
    if limit is not None:
        body["limit"] = limit
    data = await c.ok("POST", SEARCH, body)
    return [r["user_id"] for r in data["results"]]


async def test_directory_shows_room_mates_and_public_room_members_only(client: MatrixClient) -> None:
    searcher = await client.register("searcher")
    mate = await client.register("roommate")
    public = await client.register("publicperson")
    hidden = await client.register("hiddenperson")
    other = await client.register("otherhidden")
    # A private room shared with the searcher.
    shared = await searcher.create_room(preset="private_chat", invite=[mate.user_id])
    await mate.ok("POST", f"{V3}/rooms/{shared}/join", {})
    # A public room the searcher is not in.
    await public.create_room(preset="public_chat")
    # A private room the searcher is not in.
    private = await hidden.create_room(preset="private_chat", invite=[other.user_id])
    await other.ok("POST", f"{V3}/rooms/{private}/join", {})

    assert await _found(searcher, "roommate") == [mate.user_id]
    assert await _found(searcher, "publicperson") == [public.user_id]
    assert await _found(searcher, "hidden") == []
    assert await _found(searcher, "person") == [public.user_id]
    # Members of public rooms find themselves; a user only in private rooms does not.
    assert await _found(public, "publicperson") == [public.user_id]
    assert await _found(mate, "roommate") == []
    assert await _found(mate, "searcher") == [searcher.user_id]
    # Matching is case-insensitive, on the localpart and on the display name.
    await hidden.ok("PUT", f"{V3}/profile/{hidden.user_id}/displayname", {"displayname": "Zed Q"})
    assert await _found(searcher, "ZED") == []
    await mate.ok("PUT", f"{V3}/profile/{mate.user_id}/displayname", {"displayname": "Yolanda Pérez"})
    data = await searcher.ok("POST", SEARCH, {"search_term": "yolanda"})
    assert data == {"results": [{"user_id": mate.user_id, "display_name": "Yolanda Pérez"}],
                    "limited": False}
    assert await _found(searcher, "ROOMMATE") == [mate.user_id]
    # The server name is not a search term that matches everybody.
    assert await _found(searcher, "parley") == []
    # A full user ID finds its user.
    assert await _found(searcher, mate.user_id) == [mate.user_id]
    # Wildcards in the term are literal.
    assert await _found(searcher, "%") == []
    assert await _found(searcher, "_") == []


async def test_directory_follows_membership_and_room_changes(client: MatrixClient) -> None:
    searcher = await client.register("searcher")
    wanderer = await client.register("wanderer")
    room = await searcher.create_room(preset="public_chat")
    other = await wanderer.create_room(preset="private_chat")
    assert await _found(searcher, "wanderer") == []
    await wanderer.ok("POST", f"{V3}/rooms/{room}/join", {})
    assert await _found(searcher, "wanderer") == [wanderer.user_id]
    await wanderer.ok("POST", f"{V3}/rooms/{room}/leave", {})
    assert await _found(searcher, "wanderer") == []
    # The wanderer's own room going public makes them findable; world-readable history too.
    await wanderer.ok("PUT", f"{V3}/rooms/{other}/state/m.room.join_rules", {"join_rule": "public"})
    assert await _found(searcher, "wanderer") == [wanderer.user_id]
    await wanderer.ok("PUT", f"{V3}/rooms/{other}/state/m.room.join_rules", {"join_rule": "invite"})
    assert await _found(searcher, "wanderer") == []
    await wanderer.ok("PUT", f"{V3}/rooms/{other}/state/m.room.history_visibility",
                      {"history_visibility": "world_readable"})
    assert await _found(searcher, "wanderer") == [wanderer.user_id]
    # Deactivated users disappear.
    await wanderer.ok("POST", f"{V3}/account/deactivate",
                      {"auth": {"type": "m.login.password", "user": wanderer.user_id,
                                "password": "correct horse battery"}})
    assert await _found(searcher, "wanderer") == []


async def test_directory_limit_and_bad_input(client: MatrixClient) -> None:
    searcher = await client.register("searcher")
    room = await searcher.create_room(preset="public_chat")
    for i in range(4):
        member = await client.register(f"crowd{i}")
        await member.ok("POST", f"{V3}/rooms/{room}/join", {})
    data = await searcher.ok("POST", SEARCH, {"search_term": "crowd", "limit": 3})
    assert len(data["results"]) == 3 and data["limited"] is True
    data = await searcher.ok("POST", SEARCH, {"search_term": "crowd"})
    assert len(data["results"]) == 4 and data["limited"] is False
    for body, code in (({}, "M_MISSING_PARAM"), ({"search_term": 5}, "M_BAD_JSON"),
                       ({"search_term": "x", "limit": -1}, "M_BAD_JSON"),
                       ({"search_term": "x", "limit": "3"}, "M_BAD_JSON")):
        resp = await searcher.post(SEARCH, body)
        assert resp.status_code == 400 and resp.json()["errcode"] == code, body
    resp = await client.post(SEARCH, {"search_term": "crowd"}, token="")
    assert resp.status_code == 401


@pytest.mark.parametrize("config_overrides", [{"user_directory_search_all_users": True}])
async def test_directory_search_all_users(client: MatrixClient) -> None:
    searcher = await client.register("searcher")
    loner = await client.register("loner")
    await loner.create_room(preset="private_chat")
    assert await _found(searcher, "loner") == [loner.user_id]
