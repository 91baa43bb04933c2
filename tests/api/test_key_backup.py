"""Server-side key backup: versions and keys at all three levels, with the etag and version rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
ALG = "m.megolm_backup.v1.curve25519-aes-sha2"


def _key(index: int = 0, forwarded: int = 0, verified: bool = False, tag: str = "a") -> dict[str, Any]:
    return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
            "session_data": {"ephemeral": "ZXBo", "ciphertext": f"Y2lwaGVy{tag}", "mac": "bWFj"}}


async def _version(user: MatrixClient) -> str:
    got = await user.ok("POST", f"{V3}/room_keys/version",
                        {"algorithm": ALG, "auth_data": {"public_key": "cHVibGlj", "signatures": {}}})
    return str(got["version"])


async def test_versions_lifecycle(client: MatrixClient) -> None:
    alice = await client.register("alice")
    r = await alice.get(f"{V3}/room_keys/version")
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    v1 = await _version(alice)
    v2 = await _version(alice)
    assert int(v2) > int(v1)
    cur = await alice.ok("GET", f"{V3}/room_keys/version")
    assert cur["version"] == v2 and cur["count"] == 0 and cur["algorithm"] == ALG
    assert (await alice.ok("GET", f"{V3}/room_keys/version/{v1}"))["version"] == v1
    await alice.ok("PUT", f"{V3}/room_keys/version/{v2}",
                   {"algorithm": ALG, "auth_data": {"public_key": "bmV3"}, "version": v2})
    assert (await alice.ok("GET", f"{V3}/room_keys/version"))["auth_data"] == {"public_key": "bmV3"}
    r = await alice.put(f"{V3}/room_keys/version/{v2}", {"algorithm": ALG, "auth_data": {}, "version": v1})
    assert r.status_code == 400
    r = await alice.put(f"{V3}/room_keys/version/{v2}", {"algorithm": "other", "auth_data": {}})
    assert r.status_code == 400
    await alice.ok("DELETE", f"{V3}/room_keys/version/{v2}")
    assert (await alice.ok("GET", f"{V3}/room_keys/version"))["version"] == v1
    for bad in (v2, "999", "abc"):
        r = await alice.get(f"{V3}/room_keys/version/{bad}")
        assert r.status_code == 404
    # another user's backups are not visible
    bob = await client.register("bob")
    assert (await bob.get(f"{V3}/room_keys/version/{v1}")).status_code == 404


async def test_keys_three_levels_etag_and_better_key_rule(client: MatrixClient) -> None:
    alice = await client.register("alice")
    v = await _version(alice)
    room, other_room = "!r:parley.test", "!o:parley.test"
    etag0 = (await alice.ok("GET", f"{V3}/room_keys/version"))["etag"]
    got = await alice.ok("PUT", f"{V3}/room_keys/keys", {"rooms": {
        room: {"sessions": {"s1": _key(5), "s2": _key(0)}}}}, params={"version": v})
    assert got["count"] == 2 and got["etag"] != etag0
    got = await alice.ok("PUT", f"{V3}/room_keys/keys/{other_room}", {"sessions": {"s3": _key()}},
                         params={"version": v})
    assert got["count"] == 3
    # a worse key (higher index) is ignored: etag unchanged
    same = await alice.ok("PUT", f"{V3}/room_keys/keys/{room}/s1", _key(9, tag="worse"), params={"version": v})
    assert same["etag"] == got["etag"]
    assert (await alice.ok("GET", f"{V3}/room_keys/keys/{room}/s1", params={"version": v}))["first_message_index"] == 5
    # a verified key beats an unverified one with a lower index
    better = await alice.ok("PUT", f"{V3}/room_keys/keys/{room}/s2", _key(3, verified=True, tag="v"),
                            params={"version": v})
    assert better["etag"] != same["etag"]
    assert (await alice.ok("GET", f"{V3}/room_keys/keys/{room}/s2", params={"version": v}))["is_verified"] is True
    everything = await alice.ok("GET", f"{V3}/room_keys/keys", params={"version": v})
    assert set(everything["rooms"]) == {room, other_room}
    assert set(everything["rooms"][room]["sessions"]) == {"s1", "s2"}
    one_room = await alice.ok("GET", f"{V3}/room_keys/keys/{room}", params={"version": v})
    assert set(one_room["sessions"]) == {"s1", "s2"}
    r = await alice.get(f"{V3}/room_keys/keys/{room}/nope", params={"version": v})
    assert r.status_code == 404
    deleted = await alice.ok("DELETE", f"{V3}/room_keys/keys/{room}/s1", params={"version": v})
    assert deleted["count"] == 2
    deleted = await alice.ok("DELETE", f"{V3}/room_keys/keys/{room}", params={"version": v})
    assert deleted["count"] == 1
    assert (await alice.ok("GET", f"{V3}/room_keys/version"))["count"] == 1
    deleted = await alice.ok("DELETE", f"{V3}/room_keys/keys", params={"version": v})
    assert deleted["count"] == 0

    # only the current version takes uploads
    v_new = await _version(alice)
    r = await alice.put(f"{V3}/room_keys/keys/{room}/s1", _key(), params={"version": v})
    assert r.status_code == 403 and r.json()["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
    assert r.json()["current_version"] == v_new


@pytest.mark.parametrize("body", [
    {"first_message_index": -1, "forwarded_count": 0, "is_verified": False, "session_data": {}},
    {"first_message_index": 0, "forwarded_count": "0", "is_verified": False, "session_data": {}},
    {"first_message_index": 0, "forwarded_count": 0, "is_verified": 1, "session_data": {}},
    {"first_message_index": 0, "forwarded_count": 0, "is_verified": False, "session_data": "x"},
    "not an object",
])
async def test_bad_backup_input(client: MatrixClient, body: Any) -> None:
    alice = await client.register("alice")
    v = await _version(alice)
    r = await alice.put(f"{V3}/room_keys/keys/!r:parley.test/s", body, params={"version": v})
    assert r.status_code == 400 and r.json()["errcode"].startswith("M_")


async def test_bad_backup_requests(client: MatrixClient) -> None:
    alice = await client.register("alice")
    r = await alice.post(f"{V3}/room_keys/version", {"algorithm": ALG})
    assert r.status_code == 400
    r = await alice.post(f"{V3}/room_keys/version", {"algorithm": 5, "auth_data": {}})
    assert r.status_code == 400
    v = await _version(alice)
    r = await alice.get(f"{V3}/room_keys/keys")
    assert r.status_code == 400 and r.json()["errcode"] == "M_MISSING_PARAM"
    r = await alice.put(f"{V3}/room_keys/keys", {"rooms": []}, params={"version": v})
    assert r.status_code == 400
    r = await alice.put(f"{V3}/room_keys/keys", {"rooms": {"!r:x": {"sessions": []}}}, params={"version": v})
    assert r.status_code == 400
    r = await alice.get(f"{V3}/room_keys/keys", params={"version": "77"})
    assert r.status_code == 404
