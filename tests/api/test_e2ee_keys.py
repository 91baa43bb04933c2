"""Device keys: /keys/upload, /keys/query, /keys/claim, /keys/changes and their sync fields."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from homeserver.protocol.signing import SigningKey, generate_signing_key, sign_json, verify_key_b64
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


class Device:
    """A device's ed25519 identity key, producing real signatures like an Olm account does."""

    def __init__(self, user: MatrixClient) -> None:
        assert user.user_id and user.device_id
        self.user_id = user.user_id
        self.device_id = user.device_id
        self.key: SigningKey = generate_signing_key(user.device_id)
        self.ed25519 = verify_key_b64(self.key)

    def device_keys(self, curve: str = "Y3VydmUyNTUxOWtleQ") -> dict[str, Any]:
        keys = {
            "user_id": self.user_id, "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{self.device_id}": curve, f"ed25519:{self.device_id}": self.ed25519},
        }
        return sign_json(keys, self.user_id, self.key)

    def otks(self, n: int, start: int = 0, fallback: bool = False) -> dict[str, Any]:
        out = {}
        for i in range(start, start + n):
            key: dict[str, Any] = {"key": f"b3RrZXk{i:04d}"}
            if fallback:
                key["fallback"] = True
            out[f"signed_curve25519:AAAA{i:04d}"] = sign_json(key, self.user_id, self.key)
        return out


async def _upload(user: MatrixClient, body: dict[str, Any]) -> dict[str, Any]:
    return await user.ok("POST", f"{V3}/keys/upload", body)


async def test_upload_query_claim_and_sync_counts(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    dev = Device(alice)
    got = await _upload(alice, {"device_keys": dev.device_keys(), "one_time_keys": dev.otks(3),
                                "fallback_keys": dev.otks(1, 100, fallback=True)})
    assert got["one_time_key_counts"] == {"signed_curve25519": 3}
    sync = await alice.sync()
    assert sync["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert sync["device_unused_fallback_key_types"] == ["signed_curve25519"]

    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    entry = q["device_keys"][alice.user_id][alice.device_id]
    assert entry["keys"] == dev.device_keys()["keys"]
    assert entry["signatures"] == dev.device_keys()["signatures"]
    q2 = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: ["NOPE"]}})
    assert q2["device_keys"][alice.user_id] == {}

    claimed = set()
    for _ in range(3):
        c = await bob.ok("POST", f"{V3}/keys/claim",
                         {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
        (kid, key), = c["one_time_keys"][alice.user_id][alice.device_id].items()
        assert not key.get("fallback")
        claimed.add(kid)
    assert len(claimed) == 3
    assert (await alice.sync())["device_one_time_keys_count"] == {"signed_curve25519": 0}
    # none left: the fallback key, again and again, now marked used
    for _ in range(2):
        c = await bob.ok("POST", f"{V3}/keys/claim",
                         {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
        (kid, key), = c["one_time_keys"][alice.user_id][alice.device_id].items()
        assert kid == "signed_curve25519:AAAA0100" and key["fallback"] is True
    assert (await alice.sync())["device_unused_fallback_key_types"] == []
    # unknown devices and algorithms give nothing, not an error
    c = await bob.ok("POST", f"{V3}/keys/claim",
                     {"one_time_keys": {alice.user_id: {"NOPE": "signed_curve25519", alice.device_id: "x"}}})
    assert c["one_time_keys"] == {}


async def test_identity_keys_never_silently_replaced(client: MatrixClient) -> None:
    alice = await client.register("alice")
    dev = Device(alice)
    await _upload(alice, {"device_keys": dev.device_keys()})
    await _upload(alice, {"device_keys": dev.device_keys()})  # the same keys again: fine
    r = await alice.post(f"{V3}/keys/upload", {"device_keys": dev.device_keys(curve="b3RoZXJjdXJ2ZQ")})
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"
    other = Device(alice)  # a new ed25519 key for the same device ID
    r = await alice.post(f"{V3}/keys/upload", {"device_keys": other.device_keys()})
    assert r.status_code == 400
    q = await alice.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert q["device_keys"][alice.user_id][alice.device_id]["keys"] == dev.device_keys()["keys"]
    # a one-time key ID reused with other content is refused too
    await _upload(alice, {"one_time_keys": dev.otks(1)})
    changed = {k: {**v, "key": "Y2hhbmdlZA"} for k, v in dev.otks(1).items()}
    r = await alice.post(f"{V3}/keys/upload", {"one_time_keys": changed})
    assert r.status_code == 400


def _bad_bodies(dev: Device, other: Device) -> list[tuple[dict[str, Any], str]]:
    good = dev.device_keys()
    forged = dict(good, signatures=other.device_keys()["signatures"])
    tampered = dict(good, algorithms=["m.olm.v1.curve25519-aes-sha2"])  # signature no longer matches
    no_ed = sign_json({k: v for k, v in good.items() if k != "signatures"} | {"keys": {"curve25519:X": "a"}},
                      dev.user_id, dev.key)
    bad_otk = sign_json({"key": "abc"}, dev.user_id, other.key)
    return [
        ({"device_keys": "nope"}, "M_BAD_JSON"),
        ({"device_keys": dict(good, user_id="@mallory:parley.test")}, "M_INVALID_PARAM"),
        ({"device_keys": dict(good, device_id="OTHER")}, "M_INVALID_PARAM"),
        ({"device_keys": dict(good, keys=[])}, "M_BAD_JSON"),
        ({"device_keys": dict(good, keys={"ed25519:X": 5})}, "M_BAD_JSON"),
        ({"device_keys": dict(good, algorithms="olm")}, "M_BAD_JSON"),
        ({"device_keys": {k: v for k, v in good.items() if k != "signatures"}}, "M_BAD_JSON"),
        ({"device_keys": no_ed}, "M_BAD_JSON"),
        ({"device_keys": forged}, "M_INVALID_SIGNATURE"),
        ({"device_keys": tampered}, "M_INVALID_SIGNATURE"),
        ({"device_keys": dict(good, signatures={dev.user_id: {f"ed25519:{dev.device_id}": "!!"}})},
         "M_INVALID_SIGNATURE"),
        ({"one_time_keys": []}, "M_BAD_JSON"),
        ({"one_time_keys": {"nocolon": "a"}}, "M_BAD_JSON"),
        ({"one_time_keys": {"curve25519:": "a"}}, "M_BAD_JSON"),
        ({"one_time_keys": {"curve25519:A": 7}}, "M_BAD_JSON"),
        ({"one_time_keys": {"curve25519:A": ""}}, "M_BAD_JSON"),
        ({"one_time_keys": {"signed_curve25519:A": {"key": "abc"}}}, "M_BAD_JSON"),
        ({"one_time_keys": {"signed_curve25519:A": bad_otk}}, "M_INVALID_SIGNATURE"),
        ({"one_time_keys": {f"curve25519:{'x' * 300}": "a"}}, "M_BAD_JSON"),
        ({"one_time_keys": {f"curve25519:K{i}": "a" for i in range(1001)}}, "M_BAD_JSON"),
        ({"fallback_keys": {"signed_curve25519:A": bad_otk | {"fallback": "yes"}}}, "M_BAD_JSON"),
    ]


async def test_bad_uploads_get_matrix_errors(client: MatrixClient) -> None:
    alice = await client.register("alice")
    dev = Device(alice)
    other = Device(alice)
    # the device key is known first, so signed one-time keys are checked against it
    for body, errcode in _bad_bodies(dev, other):
        if "one_time_keys" in body or "fallback_keys" in body:
            await _upload(alice, {"device_keys": dev.device_keys()})
        r = await alice.post(f"{V3}/keys/upload", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["errcode"] == errcode, (body, r.json())
    r = await alice.request("POST", f"{V3}/keys/upload", raw=b"{not json")
    assert r.status_code == 400 and r.json()["errcode"] == "M_NOT_JSON"
    assert (await alice.ok("POST", f"{V3}/keys/upload", {}))["one_time_key_counts"] == {"signed_curve25519": 0}


@pytest.mark.parametrize("body", [
    {},
    {"device_keys": []},
    {"device_keys": {"@a:parley.test": "DEV"}},
    {"device_keys": {"@a:parley.test": [1]}},
    {"device_keys": {f"@u{i}:parley.test": [] for i in range(1001)}},
])
async def test_bad_queries(client: MatrixClient, body: dict[str, Any]) -> None:
    alice = await client.register("alice")
    r = await alice.post(f"{V3}/keys/query", body)
    assert r.status_code == 400 and r.json()["errcode"].startswith("M_")


@pytest.mark.parametrize("body", [
    {},
    {"one_time_keys": []},
    {"one_time_keys": {"@a:parley.test": ["DEV"]}},
    {"one_time_keys": {"@a:parley.test": {"DEV": 5}}},
    {"one_time_keys": {"@a:parley.test": {f"D{i}": "signed_curve25519" for i in range(1_001)}}},
    {"one_time_keys": {f"@u{i}:parley.test": {"D": "signed_curve25519"} for i in range(2_000)}},
])
async def test_bad_and_huge_claims(client: MatrixClient, body: dict[str, Any]) -> None:
    alice = await client.register("alice")
    r = await alice.post(f"{V3}/keys/claim", body)
    assert r.status_code == 400 and r.json()["errcode"].startswith("M_")


async def test_concurrent_claims_hand_out_each_key_once(client: MatrixClient) -> None:
    alice = await client.register("alice")
    dev = Device(alice)
    await _upload(alice, {"device_keys": dev.device_keys(), "one_time_keys": dev.otks(15),
                          "fallback_keys": dev.otks(1, 500, fallback=True)})
    claimers = [await client.register(f"c{i}") for i in range(4)]
    body = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}

    async def claim(who: MatrixClient) -> str:
        got = await who.ok("POST", f"{V3}/keys/claim", body)
        (kid,) = got["one_time_keys"][alice.user_id][alice.device_id]
        return str(kid)

    results = await asyncio.gather(*(claim(claimers[i % 4]) for i in range(24)))
    one_time = [k for k in results if k != "signed_curve25519:AAAA0500"]
    assert sorted(one_time) == sorted(dev.otks(15))  # every key exactly once
    assert results.count("signed_curve25519:AAAA0500") == 9
    assert (await alice.sync())["device_one_time_keys_count"]["signed_curve25519"] == 0


async def test_device_list_changes_in_sync_and_keys_changes(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    start = (await bob.sync())["next_batch"]
    waiter = asyncio.create_task(bob.sync(since=start, timeout=20000))
    await asyncio.sleep(0)
    await _upload(alice, {"device_keys": Device(alice).device_keys()})
    got = await asyncio.wait_for(waiter, 10)
    assert alice.user_id in got["device_lists"]["changed"]
    mid = got["next_batch"]
    ch = await bob.ok("GET", f"{V3}/keys/changes", params={"from": start, "to": mid})
    assert alice.user_id in ch["changed"] and ch["left"] == []
    # nothing changed since: an empty incremental device list
    assert (await bob.sync(since=mid))["device_lists"]["changed"] == []
    await alice.ok("POST", f"{V3}/rooms/{room}/leave", {})
    after = await bob.sync(since=mid)
    assert after["device_lists"]["left"] == [alice.user_id]
    ch = await bob.ok("GET", f"{V3}/keys/changes", params={"from": mid, "to": after["next_batch"]})
    assert ch["left"] == [alice.user_id]
    # a stranger's key change is not news to bob
    carol = await client.register("carol")
    await _upload(carol, {"device_keys": Device(carol).device_keys()})
    assert carol.user_id not in (await bob.sync(since=after["next_batch"]))["device_lists"]["changed"]
    r = await bob.get(f"{V3}/keys/changes", params={"from": "bogus", "to": mid})
    assert r.status_code == 400
    r = await bob.get(f"{V3}/keys/changes", params={"from": start})
    assert r.status_code == 400


async def test_relogin_keeps_keys_and_deleting_device_removes_them(client: MatrixClient) -> None:
    alice = await client.register("alice", password="pw-alice-long")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    dev = Device(alice)
    await _upload(alice, {"device_keys": dev.device_keys(), "one_time_keys": dev.otks(2)})
    login = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw-alice-long", "device_id": alice.device_id}, token="")
    again = alice.as_user(login["access_token"], alice.user_id, alice.device_id or "")
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert alice.device_id in q["device_keys"][alice.user_id]
    assert (await again.sync())["device_one_time_keys_count"] == {"signed_curve25519": 2}

    since = (await bob.sync())["next_batch"]
    r = await again.post(f"{V3}/delete_devices", {
        "devices": [alice.device_id],
        "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                 "password": "pw-alice-long"}})
    if r.status_code == 401:  # a UIA challenge first: answer it in its session
        r = await again.post(f"{V3}/delete_devices", {
            "devices": [alice.device_id],
            "auth": {"type": "m.login.password", "session": r.json()["session"],
                     "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw-alice-long"}})
    assert r.status_code == 200, r.text
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert q["device_keys"][alice.user_id] == {}
    assert alice.user_id in (await bob.sync(since=since))["device_lists"]["changed"]
    c = await bob.ok("POST", f"{V3}/keys/claim",
                     {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
    assert c["one_time_keys"] == {}


async def test_new_and_renamed_devices_are_device_list_changes(client: MatrixClient) -> None:
    alice = await client.register("alice", password="pw-alice-long")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    since = (await bob.sync())["next_batch"]
    own = (await alice.sync())["next_batch"]
    login = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw-alice-long"}, token="")
    got = await bob.sync(since=since)
    assert got["device_lists"]["changed"] == [alice.user_id]
    assert alice.user_id in (await alice.sync(since=own))["device_lists"]["changed"]  # her own devices too
    await alice.ok("PUT", f"{V3}/devices/{login['device_id']}", {"display_name": "phone"})
    assert (await bob.sync(since=got["next_batch"]))["device_lists"]["changed"] == [alice.user_id]
