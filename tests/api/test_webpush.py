"""Web Push (RFC 8030/8291/8292): the VAPID public key endpoint, a browser subscription stored
as an org.parley.webpush pusher, and a receiver on loopback that decrypts the aes128gcm body
with the subscription's private key and checks the VAPID JWT."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from homeserver.app import Homeserver
from homeserver.config_push import PushConfig
from homeserver.push.webpush_crypto import b64url, b64url_decode, decrypt, encrypt, public_bytes
from tests.api.test_push_delivery import wait_until
from tests.conftest import MatrixClient
from tests.push_gateway import TestGateway

V3 = "/_matrix/client/v3"
KEY_PATH = "/_matrix/client/unstable/org.parley.push/webpush_key"


@pytest.fixture
async def service() -> AsyncIterator[TestGateway]:
    gw = await TestGateway().start()
    try:
        yield gw
    finally:
        await gw.close()


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"push": PushConfig(ip_range_allowlist=("127.0.0.0/8",), retry_base_ms=30, poll_interval_ms=50,
                               vapid_contact="mailto:admin@test.parley")}


def test_rfc8291_roundtrip_and_layout() -> None:
    ua = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    body = encrypt(b"hello push", b64url(public_bytes(ua.public_key())), b64url(auth))
    assert body[16:20] == (4096).to_bytes(4, "big") and body[20] == 65 and body[21] == 0x04
    assert decrypt(body, ua, auth) == b"hello push"
    wrong = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Exception):  # noqa: B017 - any failure to authenticate the ciphertext
        decrypt(body, wrong, auth)


def test_rfc8291_appendix_a_vector() -> None:
    """RFC 8291 Appendix A: fixed keys and salt give exactly the published message."""
    def key(d: str) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(int.from_bytes(b64url_decode(d), "big"), ec.SECP256R1())

    ua_public = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    auth = "BTBZMqHH6r4Tts7J_aSIgg"
    expected = ("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6T"
                "lzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
    body = encrypt(b"When I grow up, I want to be a watermelon", ua_public, auth,
                   sender_key=key("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"),
                   salt=b64url_decode("DGv6ra1nlYgDCS1FRnbzlw"))
    assert b64url(body) == expected
    ua = key("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")
    assert decrypt(body, ua, b64url_decode(auth)) == b"When I grow up, I want to be a watermelon"


async def subscribe(client: MatrixClient, service: TestGateway) -> tuple[MatrixClient, MatrixClient, str, Any]:
    alice, bob = await client.register("alice"), await client.register()
    room = await alice.create_room(preset="public_chat", name="Browsers")
    await bob.ok("POST", f"{V3}/join/{room}")
    ua = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    endpoint = f"http://127.0.0.1:{service.port}/wp/subscription-1"
    await alice.ok("POST", f"{V3}/pushers/set", {
        "kind": "org.parley.webpush", "app_id": "org.parley.web", "pushkey": endpoint,
        "app_display_name": "Parley", "device_display_name": "Chromium", "lang": "en",
        "data": {"p256dh": b64url(public_bytes(ua.public_key())), "auth": b64url(auth)}})
    return alice, bob, room, (ua, auth)


async def test_vapid_key_is_stable(client: MatrixClient, hs: Homeserver) -> None:
    first = (await client.ok("GET", KEY_PATH))
    assert first["kind"] == "org.parley.webpush"
    raw = b64url_decode(first["public_key"])
    assert len(raw) == 65 and raw[0] == 4
    hs.notifications.delivery._vapid_pem = None  # a restart reads the stored key again
    assert (await client.ok("GET", KEY_PATH))["public_key"] == first["public_key"]


async def test_encrypted_push_reaches_the_subscription(client: MatrixClient, service: TestGateway) -> None:
    _, bob, room, (ua, auth) = await subscribe(client, service)
    await bob.ok("PUT", f"{V3}/profile/{bob.user_id}/displayname", {"displayname": "Bob"})
    event_id = await bob.send_text(room, "hello browser")
    [req] = await service.wait_for(1)
    assert req.path == "/wp/subscription-1"
    assert req.headers["content-encoding"] == "aes128gcm" and int(req.headers["ttl"]) > 0
    payload = orjson.loads(decrypt(req.body, ua, auth))
    assert payload["event_id"] == event_id and payload["room_id"] == room
    assert payload["body"] == "hello browser" and payload["sender_display_name"] == "Bob"
    assert payload["room_name"] == "Browsers" and payload["counts"] == {"unread": 1}
    # RFC 8292: "vapid t=<JWT>, k=<public key>", the JWT signed by that key for this origin.
    scheme, _, params = req.headers["authorization"].partition(" ")
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert scheme == "vapid"
    key = (await client.ok("GET", KEY_PATH))["public_key"]
    assert fields["k"] == key
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    claims = jwt.decode(fields["t"], pub, algorithms=["ES256"], audience=f"http://127.0.0.1:{service.port}")
    assert claims["sub"] == "mailto:admin@test.parley"


async def test_gone_subscription_removes_the_pusher(client: MatrixClient, service: TestGateway) -> None:
    service.statuses = [410]
    alice, bob, room, _ = await subscribe(client, service)
    await bob.send_text(room, "are you still there?")
    await service.wait_for(1)

    async def gone() -> bool:
        return (await alice.ok("GET", f"{V3}/pushers"))["pushers"] == []

    await wait_until(gone)


async def test_encrypted_room_sends_no_body(client: MatrixClient, service: TestGateway) -> None:
    alice, bob, _, (ua, auth) = await subscribe(client, service)
    secret = await alice.create_room(preset="public_chat", initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    await bob.ok("POST", f"{V3}/join/{secret}")
    await bob.send_text(secret, "plaintext that must not leave")
    [req] = await service.wait_for(1)
    payload = orjson.loads(decrypt(req.body, ua, auth))
    assert payload["room_id"] == secret and "body" not in payload
