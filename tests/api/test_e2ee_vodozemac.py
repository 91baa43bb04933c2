"""Real Olm/Megolm through Parley: vodozemac accounts publish real device and one-time keys,
claim each other's keys, open an Olm session over to-device, share a Megolm room key and
exchange an encrypted room message. Afterwards no table of the database holds the plaintext."""

from __future__ import annotations

import base64
import json
from typing import Any

import vodozemac

from homeserver.app import Homeserver
from homeserver.protocol.canonical import encode_canonical_json
from tests.conftest import MatrixClient, assert_database_free_of

V3 = "/_matrix/client/v3"
OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
SECRET = "the eagle lands at midnight"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


class Olm:
    """One device: a vodozemac account and its uploads, signed like Element signs them."""

    def __init__(self, user: MatrixClient) -> None:
        self.user = user
        self.account = vodozemac.Account()

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        sig = self.account.sign(encode_canonical_json(body)).to_base64()
        return {**obj, "signatures": {self.user.user_id: {f"ed25519:{self.user.device_id}": sig}}}

    @property
    def curve(self) -> str:
        return str(self.account.curve25519_key.to_base64())

    @property
    def ed(self) -> str:
        return str(self.account.ed25519_key.to_base64())

    async def publish(self, n_otks: int) -> None:
        device_keys = self.sign({
            "user_id": self.user.user_id, "device_id": self.user.device_id, "algorithms": [OLM, MEGOLM],
            "keys": {f"curve25519:{self.user.device_id}": self.curve, f"ed25519:{self.user.device_id}": self.ed},
        })
        self.account.generate_one_time_keys(n_otks)
        otks = {f"signed_curve25519:{kid}": self.sign({"key": key.to_base64()})
                for kid, key in self.account.one_time_keys.items()}
        got = await self.user.ok("POST", f"{V3}/keys/upload", {"device_keys": device_keys, "one_time_keys": otks})
        assert got["one_time_key_counts"]["signed_curve25519"] == n_otks
        self.account.mark_keys_as_published()


def _verify(ed25519: str, obj: dict[str, Any], user_id: str, key_id: str) -> None:
    body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    vodozemac.Ed25519PublicKey.from_base64(ed25519).verify_signature(
        encode_canonical_json(body), vodozemac.Ed25519Signature.from_base64(obj["signatures"][user_id][key_id]))


async def test_olm_and_megolm_between_two_devices(client: MatrixClient, hs: Homeserver) -> None:
    alice, bob = await client.register("alice"), await client.register("bob")
    a, b = Olm(alice), Olm(bob)
    await a.publish(3)
    await b.publish(3)
    room = await alice.create_room(preset="private_chat", invite=[bob.user_id], is_direct=True)
    await bob.ok("POST", f"{V3}/join/{room}", {})
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.encryption/", {"algorithm": MEGOLM})
    a_since = (await alice.sync())["next_batch"]

    # bob looks up alice's device, checks its self-signature, claims a one-time key and checks it
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    dev = q["device_keys"][alice.user_id][alice.device_id]
    a_ed = dev["keys"][f"ed25519:{alice.device_id}"]
    _verify(a_ed, dev, alice.user_id or "", f"ed25519:{alice.device_id}")
    claimed = await bob.ok("POST", f"{V3}/keys/claim",
                           {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
    (otk,) = claimed["one_time_keys"][alice.user_id][alice.device_id].values()
    _verify(a_ed, otk, alice.user_id or "", f"ed25519:{alice.device_id}")

    # an Olm session carries the Megolm room key to alice's device
    olm = b.account.create_outbound_session(
        vodozemac.Curve25519PublicKey.from_base64(dev["keys"][f"curve25519:{alice.device_id}"]),
        vodozemac.Curve25519PublicKey.from_base64(otk["key"]))
    group = vodozemac.GroupSession()
    payload = {"type": "m.room_key", "content": {"algorithm": MEGOLM, "room_id": room,
                                                  "session_id": group.session_id,
                                                  "session_key": group.session_key.to_base64()},
               "sender": bob.user_id, "recipient": alice.user_id, "recipient_keys": {"ed25519": a_ed},
               "keys": {"ed25519": b.ed}}
    msg_type, body = olm.encrypt(json.dumps(payload).encode()).to_parts()
    await bob.ok("PUT", f"{V3}/sendToDevice/m.room.encrypted/olm1", {"messages": {alice.user_id: {
        alice.device_id: {"algorithm": OLM, "sender_key": b.curve,
                          "ciphertext": {a.curve: {"type": msg_type, "body": _b64(body)}}}}}})
    # and the room message itself is Megolm ciphertext
    ciphertext = group.encrypt(json.dumps({"type": "m.room.message", "room_id": room,
                                           "content": {"msgtype": "m.text", "body": SECRET}}).encode())
    await bob.ok("PUT", f"{V3}/rooms/{room}/send/m.room.encrypted/m1", {
        "algorithm": MEGOLM, "sender_key": b.curve, "device_id": bob.device_id,
        "session_id": group.session_id, "ciphertext": ciphertext.to_base64()})

    got = await alice.sync(since=a_since)
    (event,) = [e for e in got["to_device"]["events"] if e["type"] == "m.room.encrypted"]
    assert event["sender"] == bob.user_id
    part = event["content"]["ciphertext"][a.curve]
    pre_key = vodozemac.AnyOlmMessage.from_parts(part["type"], _unb64(part["body"])).to_pre_key()
    _, plaintext = a.account.create_inbound_session(vodozemac.Curve25519PublicKey.from_base64(b.curve), pre_key)
    room_key = json.loads(plaintext)
    assert room_key["type"] == "m.room_key" and room_key["recipient"] == alice.user_id
    inbound = vodozemac.InboundGroupSession(vodozemac.SessionKey(room_key["content"]["session_key"]))
    timeline = got["rooms"]["join"][room]["timeline"]["events"]
    (encrypted,) = [e for e in timeline if e["type"] == "m.room.encrypted"]
    decrypted = inbound.decrypt(vodozemac.MegolmMessage.from_base64(encrypted["content"]["ciphertext"]))
    assert json.loads(decrypted.plaintext)["content"]["body"] == SECRET
    # the one-time key alice's session used was handed out once: two are left
    assert (await alice.sync(since=got["next_batch"]))["device_one_time_keys_count"]["signed_curve25519"] == 2

    # the server never held the plaintext: search every table
    await assert_database_free_of(hs, [SECRET])
