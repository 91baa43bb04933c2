"""Cross-signing: /keys/device_signing/upload (UIA to replace keys), /keys/signatures/upload,
and the keys and signatures in /keys/query."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.signing import SigningKey, generate_signing_key, key_id, sign_json, verify_key_b64
from tests.api.test_e2ee_keys import Device
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
PASSWORD = "pw-long-enough"
USAGES = ("master", "self_signing", "user_signing")


def _named_by_public_key() -> SigningKey:
    k = generate_signing_key("tmp")
    k.version = verify_key_b64(k)  # a cross-signing key's ID is ed25519:<its public key>
    return k


class CrossSigning:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.keys = {u: _named_by_public_key() for u in USAGES}
        self.objs: dict[str, dict[str, Any]] = {}
        for usage, k in self.keys.items():
            obj: dict[str, Any] = {"user_id": user_id, "usage": [usage], "keys": {key_id(k): k.version}}
            if usage != "master":
                obj = sign_json(obj, user_id, self.keys["master"])
            self.objs[usage] = obj

    def pub(self, usage: str) -> str:
        return self.keys[usage].version

    def body(self) -> dict[str, Any]:
        return {f"{u}_key": o for u, o in self.objs.items()}


async def _user(client: MatrixClient, name: str) -> tuple[MatrixClient, Device]:
    user = await client.register(name, password=PASSWORD)
    dev = Device(user)
    await user.ok("POST", f"{V3}/keys/upload", {"device_keys": dev.device_keys()})
    return user, dev


def _password_auth(user: MatrixClient, session: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"type": "m.login.password", "password": PASSWORD,
                            "identifier": {"type": "m.id.user", "user": user.user_id}}
    if session:
        auth["session"] = session
    return auth


async def test_upload_query_and_replace_behind_uia(client: MatrixClient) -> None:
    alice, _ = await _user(client, "alice")
    bob, _ = await _user(client, "bob")
    cs = CrossSigning(alice.user_id or "")
    # the first upload needs no UIA; the same keys again neither
    await alice.ok("POST", f"{V3}/keys/device_signing/upload", cs.body())
    await alice.ok("POST", f"{V3}/keys/device_signing/upload", cs.body())
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert q["master_keys"][alice.user_id]["keys"] == cs.objs["master"]["keys"]
    assert q["self_signing_keys"][alice.user_id]["keys"] == cs.objs["self_signing"]["keys"]
    assert alice.user_id not in q.get("user_signing_keys", {})  # only shown to its owner
    own = await alice.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert own["user_signing_keys"][alice.user_id]["keys"] == cs.objs["user_signing"]["keys"]

    new = CrossSigning(alice.user_id or "")
    r = await alice.post(f"{V3}/keys/device_signing/upload", new.body())
    assert r.status_code == 401 and "session" in r.json()
    r2 = await alice.post(f"{V3}/keys/device_signing/upload",
                          {**new.body(), "auth": _password_auth(alice, r.json()["session"])})
    assert r2.status_code == 200, r2.text
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert q["master_keys"][alice.user_id]["keys"] == new.objs["master"]["keys"]


async def test_bad_cross_signing_keys(client: MatrixClient) -> None:
    alice, _ = await _user(client, "alice")
    cs = CrossSigning(alice.user_id or "")
    other = CrossSigning(alice.user_id or "")
    cases = [
        ({"self_signing_key": cs.objs["self_signing"]}, "M_INVALID_PARAM"),  # no master key yet
        ({"master_key": "nope"}, "M_BAD_JSON"),
        ({"master_key": dict(cs.objs["master"], usage=["self_signing"])}, "M_BAD_JSON"),
        ({"master_key": dict(cs.objs["master"], keys={"ed25519:abc": "def"})}, "M_BAD_JSON"),
        ({"master_key": dict(cs.objs["master"], keys={})}, "M_BAD_JSON"),
        ({"master_key": dict(cs.objs["master"], user_id="@bob:parley.test")}, "M_INVALID_PARAM"),
        ({"master_key": cs.objs["master"], "self_signing_key": other.objs["self_signing"]},
         "M_INVALID_SIGNATURE"),
    ]
    for body, errcode in cases:
        r = await alice.post(f"{V3}/keys/device_signing/upload", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["errcode"] == errcode, (body, r.json())


async def test_signatures_upload_and_query(client: MatrixClient) -> None:
    alice, dev = await _user(client, "alice")
    bob, _ = await _user(client, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    acs, bcs = CrossSigning(alice.user_id or ""), CrossSigning(bob.user_id or "")
    await alice.ok("POST", f"{V3}/keys/device_signing/upload", acs.body())
    await bob.ok("POST", f"{V3}/keys/device_signing/upload", bcs.body())
    since = (await bob.sync())["next_batch"]

    signed_device = sign_json(dev.device_keys(), alice.user_id or "", acs.keys["self_signing"])
    signed_master = sign_json(acs.objs["master"], alice.user_id or "", dev.key)
    forged = sign_json(dev.device_keys(), alice.user_id or "", bcs.keys["self_signing"])
    forged["signatures"][alice.user_id] = {
        f"ed25519:{acs.pub('self_signing')}": forged["signatures"][alice.user_id][f"ed25519:{bcs.pub('self_signing')}"]}
    got = await alice.ok("POST", f"{V3}/keys/signatures/upload", {
        alice.user_id: {alice.device_id: signed_device, acs.pub("master"): signed_master}})
    assert got["failures"] == {}
    r = await alice.ok("POST", f"{V3}/keys/signatures/upload", {alice.user_id: {alice.device_id: forged}})
    assert r["failures"][alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    r = await alice.ok("POST", f"{V3}/keys/signatures/upload", {alice.user_id: {"NOSUCH": signed_device}})
    assert r["failures"][alice.user_id]["NOSUCH"]["errcode"] == "M_NOT_FOUND"

    # bob verifies alice: his user-signing key over her master key, visible to him only
    bob_on_alice = sign_json(acs.objs["master"], bob.user_id or "", bcs.keys["user_signing"])
    got = await bob.ok("POST", f"{V3}/keys/signatures/upload", {alice.user_id: {acs.pub("master"): bob_on_alice}})
    assert got["failures"] == {}

    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    dsigs = q["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert f"ed25519:{acs.pub('self_signing')}" in dsigs and f"ed25519:{alice.device_id}" in dsigs
    msigs = q["master_keys"][alice.user_id]["signatures"]
    assert f"ed25519:{alice.device_id}" in msigs[alice.user_id]
    assert f"ed25519:{bcs.pub('user_signing')}" in msigs[bob.user_id]
    carol, _ = await _user(client, "carol")
    q = await carol.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert bob.user_id not in q["master_keys"][alice.user_id].get("signatures", {})
    assert alice.user_id in (await bob.sync(since=since))["device_lists"]["changed"]


async def test_bad_signature_uploads(client: MatrixClient) -> None:
    alice, _ = await _user(client, "alice")
    r = await alice.post(f"{V3}/keys/signatures/upload", {alice.user_id: "x"})
    assert r.status_code == 400
    r = await alice.post(f"{V3}/keys/signatures/upload",
                         {alice.user_id: {f"K{i}": {} for i in range(1001)}})
    assert r.status_code == 400
    got = await alice.ok("POST", f"{V3}/keys/signatures/upload", {alice.user_id: {alice.device_id: {}}})
    assert got["failures"][alice.user_id][alice.device_id]["errcode"].startswith("M_")


async def test_private_user_signing_changes_are_not_announced(client: MatrixClient) -> None:
    alice, _ = await _user(client, "alice")
    bob, _ = await _user(client, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    cs = CrossSigning(alice.user_id or "")
    since = (await bob.sync())["next_batch"]
    await alice.ok("POST", f"{V3}/keys/device_signing/upload", cs.body())
    got = await bob.sync(since=since)
    assert alice.user_id in got["device_lists"]["changed"]
    new_usk = CrossSigning(alice.user_id or "")
    new_usk.keys["master"] = cs.keys["master"]
    usk = sign_json({k: v for k, v in new_usk.objs["user_signing"].items() if k != "signatures"},
                    alice.user_id or "", cs.keys["master"])
    body = {"user_signing_key": usk, "auth": _password_auth(alice)}
    alice_since = (await alice.sync())["next_batch"]
    await alice.ok("POST", f"{V3}/keys/device_signing/upload", body)
    own = await alice.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert own["user_signing_keys"][alice.user_id]["keys"] == usk["keys"]
    assert alice.user_id not in (await bob.sync(since=got["next_batch"]))["device_lists"]["changed"]
    assert alice.user_id in (await alice.sync(since=alice_since))["device_lists"]["changed"]
    # bob signs alice's master key: news for bob only, not for alice's other contacts
    bcs = CrossSigning(bob.user_id or "")
    await bob.ok("POST", f"{V3}/keys/device_signing/upload", bcs.body())
    bob_since = (await bob.sync())["next_batch"]
    alice_since = (await alice.sync())["next_batch"]
    signed = sign_json(cs.objs["master"], bob.user_id or "", bcs.keys["user_signing"])
    got = await bob.ok("POST", f"{V3}/keys/signatures/upload", {alice.user_id: {cs.pub("master"): signed}})
    assert got["failures"] == {}
    assert alice.user_id in (await bob.sync(since=bob_since))["device_lists"]["changed"]
    assert (await alice.sync(since=alice_since))["device_lists"]["changed"] == []
