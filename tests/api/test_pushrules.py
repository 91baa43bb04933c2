"""Push rule paths: trailing slashes, per-kind listing, encoded rule IDs, malformed paths and actions."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
P = f"{V3}/pushrules"


async def test_ruleset_paths(client: MatrixClient) -> None:
    alice = await client.register()
    full = await alice.ok("GET", f"{P}/")
    assert set(full["global"]) >= {"override", "content", "room", "sender", "underride"}
    assert await alice.ok("GET", f"{P}/global/") == full["global"]
    room_rules = await alice.ok("GET", f"{P}/global/underride/", validate=False)
    assert room_rules == full["global"]["underride"]
    missing = await alice.get(P)
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_UNRECOGNIZED"


@pytest.mark.parametrize("path", ["/global", "/global/room", "/not_a_scope/", "/global/not_a_kind/",
                                  "/global/override/.m.rule.master/not_an_attr", "/a/b/c/d/e"])
async def test_malformed_get_paths_answer_400(client: MatrixClient, path: str) -> None:
    alice = await client.register()
    resp = await alice.get(P + path)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"].startswith("M_")


@pytest.mark.parametrize("path,body", [
    ("/", {"actions": ["notify"]}),
    ("/global", {"actions": ["notify"]}),
    ("/global/room", {"actions": ["notify"]}),
    ("/global/room/", {"actions": ["notify"]}),
    ("/not_a_scope/room/x", {"actions": ["notify"]}),
    ("/global/not_a_kind/x", {"actions": ["notify"]}),
    ("/global/room/" + quote("#fo\\o:example.com", safe=""), {"actions": ["notify"]}),
    ("/global/room/" + quote("a/b", safe=""), {"actions": ["notify"]}),
    ("/global/room/x", {"actions": ["not_an_action"]}),
    ("/global/room/x", {"actions": [{"set_tweak": 5}]}),
    ("/global/room/x", {"actions": "notify"}),
    ("/global/room/x", {}),
    ("/global/override/.m.rule.master/not_an_attr", {"enabled": True}),
    ("/global/override/.m.rule.master/enabled", {"enabled": "yes"}),
    ("/global/override/.m.rule.master/actions", {"actions": [7]}),
])
async def test_malformed_puts_answer_400(client: MatrixClient, path: str, body: dict) -> None:
    alice = await client.register()
    resp = await alice.put(P + path, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"].startswith("M_")


async def test_encoded_rule_ids_and_ordering(client: MatrixClient) -> None:
    alice = await client.register()
    rid = "#spam:example.com"
    enc = quote(rid, safe="")
    await alice.ok("PUT", f"{P}/global/room/{enc}", {"actions": ["notify", {"set_tweak": "sound", "value": "x"}]})
    got = await alice.ok("GET", f"{P}/global/room/{enc}")
    assert got["rule_id"] == rid and got["actions"][0] == "notify"
    await alice.ok("PUT", f"{P}/global/room/{quote('#b:x', safe='')}", {"actions": ["dont_notify"]})
    ids = [r["rule_id"] for r in (await alice.ok("GET", f"{P}/global/"))["room"]]
    assert ids.index("#b:x") < ids.index(rid)  # new rules go first
    assert (await alice.ok("GET", f"{P}/global/room/{enc}/enabled")) == {"enabled": True}
    await alice.ok("DELETE", f"{P}/global/room/{enc}")
    assert (await alice.get(f"{P}/global/room/{enc}")).status_code == 404
    assert (await alice.get(f"{P}/global/override/not_a_rule")).status_code == 404


async def test_non_ascii_rule_ids(client: MatrixClient) -> None:
    alice = await client.register()
    rid = "#café:example.com"
    await alice.ok("PUT", f"{P}/global/room/{quote(rid, safe='')}", {"actions": ["notify"]})
    assert (await alice.ok("GET", f"{P}/global/room/{quote(rid, safe='')}"))["rule_id"] == rid
    # Over the legacy prefix too.
    assert (await alice.ok("GET", f"/_matrix/client/r0/pushrules/global/room/{quote(rid, safe='')}"))["rule_id"] == rid
