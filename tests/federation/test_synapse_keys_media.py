"""E2EE keys and media between Parley and a real Synapse on loopback, both directions: each
server's clients query the other's users' device keys and claim their one-time keys, and media
uploaded on one downloads through the other (and Parley keeps what it fetched)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from homeserver.protocol.signing import generate_signing_key, sign_json, verify_key_b64
from tests.federation.peers import Peer
from tests.federation.test_synapse_peer import _auth, _register
from tests.media_conftest import png


def _upload_keys(peer: Peer, user: dict[str, Any], otk_id: str) -> dict[str, Any]:
    """Signed device keys and one signed one-time key for the user's device, as a client would."""
    device = user["device_id"]
    key = generate_signing_key(device)
    device_keys = sign_json({"user_id": user["user_id"], "device_id": device,
                             "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                             "keys": {f"curve25519:{device}": "c" * 43, f"ed25519:{device}": verify_key_b64(key)}},
                            user["user_id"], key)
    otk = sign_json({"key": "o" * 43}, user["user_id"], key)
    resp = httpx.post(f"{peer.client_base}/_matrix/client/v3/keys/upload", headers=_auth(user), timeout=30,
                      json={"device_keys": device_keys, "one_time_keys": {f"signed_curve25519:{otk_id}": otk}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["one_time_key_counts"]["signed_curve25519"] == 1
    return device_keys


def _query(peer: Peer, user: dict[str, Any], target: str) -> dict[str, Any]:
    resp = httpx.post(f"{peer.client_base}/_matrix/client/v3/keys/query", headers=_auth(user), timeout=60,
                      json={"device_keys": {target: []}, "timeout": 20000})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _claim(peer: Peer, user: dict[str, Any], target: str, device: str) -> dict[str, Any]:
    resp = httpx.post(f"{peer.client_base}/_matrix/client/v3/keys/claim", headers=_auth(user), timeout=60,
                      json={"one_time_keys": {target: {device: "signed_curve25519"}}, "timeout": 20000})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _check_keys_cross(asker_peer: Peer, asker: dict[str, Any], owner_peer: Peer, owner: dict[str, Any]) -> None:
    keys = _upload_keys(owner_peer, owner, "AAAAAQ")
    body = _query(asker_peer, asker, owner["user_id"])
    assert body["failures"] == {}
    got = body["device_keys"][owner["user_id"]][owner["device_id"]]
    assert {k: v for k, v in got.items() if k != "unsigned"} == keys
    claimed = _claim(asker_peer, asker, owner["user_id"], owner["device_id"])
    assert claimed["failures"] == {}
    assert list(claimed["one_time_keys"][owner["user_id"]][owner["device_id"]]) == ["signed_curve25519:AAAAAQ"]
    # The only one-time key is gone now (and there is no fallback key).
    again = _claim(asker_peer, asker, owner["user_id"], owner["device_id"])
    assert again["one_time_keys"].get(owner["user_id"], {}) == {}


def test_parley_client_queries_and_claims_synapse_keys(parley: Peer, synapse: Peer) -> None:
    _check_keys_cross(parley, _register(parley), synapse, _register(synapse))


def test_synapse_client_queries_and_claims_parley_keys(parley: Peer, synapse: Peer) -> None:
    _check_keys_cross(synapse, _register(synapse), parley, _register(parley))


def _upload_media(peer: Peer, user: dict[str, Any], data: bytes, ctype: str, name: str) -> str:
    resp = httpx.post(f"{peer.client_base}/_matrix/media/v3/upload", params={"filename": name}, content=data,
                      headers={**_auth(user), "Content-Type": ctype}, timeout=30)
    assert resp.status_code == 200, resp.text
    uri = str(resp.json()["content_uri"])
    assert uri.startswith(f"mxc://{peer.server_name}/")
    return uri.rsplit("/", 1)[1]


def _download(peer: Peer, user: dict[str, Any], server: str, media_id: str) -> httpx.Response:
    return httpx.get(f"{peer.client_base}/_matrix/client/v1/media/download/{server}/{quote(media_id)}",
                     headers=_auth(user), timeout=60)


def _synapse_admin(synapse: Peer) -> dict[str, Any]:
    """A Synapse server admin, registered with the shared secret of its generated config."""
    secret = yaml.safe_load((synapse.data / "homeserver.yaml").read_text())["registration_shared_secret"]
    url = f"{synapse.client_base}/_synapse/admin/v1/register"
    nonce = httpx.get(url, timeout=30).json()["nonce"]
    name, password = f"admin{secrets.token_hex(3)}", secrets.token_hex(8)
    mac = hmac.new(secret.encode(), b"\x00".join([nonce.encode(), name.encode(), password.encode(), b"admin"]),
                   hashlib.sha1).hexdigest()
    resp = httpx.post(url, json={"nonce": nonce, "username": name, "password": password, "admin": True,
                                 "mac": mac}, timeout=30)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_synapse_media_downloads_through_parley_and_is_cached(parley: Peer, synapse: Peer) -> None:
    bob, alice = _register(synapse), _register(parley)
    picture = png(64, 48)
    media_id = _upload_media(synapse, bob, picture, "image/png", "from-synapse.png")
    resp = _download(parley, alice, synapse.server_name, media_id)
    assert resp.status_code == 200, resp.text
    assert resp.content == picture
    assert resp.headers["content-type"] == "image/png"
    assert 'filename="from-synapse.png"' in resp.headers["content-disposition"]
    with sqlite3.connect(parley.data / "parley.db") as db:
        rows = db.execute("SELECT size, content_type FROM remote_media WHERE origin = ? AND media_id = ?",
                          (synapse.server_name, media_id)).fetchall()
    assert rows == [(len(picture), "image/png")]
    # Gone from Synapse, still served by Parley from its cache, thumbnails too.
    admin = _synapse_admin(synapse)
    resp = httpx.delete(f"{synapse.client_base}/_synapse/admin/v1/media/{synapse.server_name}/{media_id}",
                        headers=_auth(admin), timeout=30)
    assert resp.status_code == 200, resp.text
    assert _download(synapse, bob, synapse.server_name, media_id).status_code == 404
    again = _download(parley, alice, synapse.server_name, media_id)
    assert again.status_code == 200 and again.content == picture
    thumb = httpx.get(f"{parley.client_base}/_matrix/client/v1/media/thumbnail/{synapse.server_name}/{media_id}",
                      params={"width": 32, "height": 32, "method": "scale"}, headers=_auth(alice), timeout=60)
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
    missing = _download(parley, alice, synapse.server_name, "doesNotExist123")
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"


def test_parley_media_downloads_through_synapse(parley: Peer, synapse: Peer) -> None:
    alice, bob = _register(parley), _register(synapse)
    picture = png(50, 20)
    media_id = _upload_media(parley, alice, picture, "image/png", "from-parley.png")
    resp = _download(synapse, bob, parley.server_name, media_id)
    assert resp.status_code == 200, resp.text
    assert resp.content == picture
    assert resp.headers["content-type"] == "image/png"
    text = _upload_media(parley, alice, "héllo wörld".encode(), "text/plain", "notes.txt")
    resp = _download(synapse, bob, parley.server_name, text)
    assert resp.status_code == 200 and resp.content == "héllo wörld".encode(), resp.text
    thumb = httpx.get(f"{synapse.client_base}/_matrix/client/v1/media/thumbnail/{parley.server_name}/{media_id}",
                      params={"width": 16, "height": 16, "method": "scale"}, headers=_auth(bob), timeout=60)
    assert thumb.status_code == 200, thumb.text
    assert thumb.headers["content-type"].startswith("image/")


def _create(peer: Peer, user: dict[str, Any], **body: Any) -> str:
    resp = httpx.post(f"{peer.client_base}/_matrix/client/v3/createRoom", json=body, headers=_auth(user), timeout=30)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["room_id"])


def _add_child(peer: Peer, user: dict[str, Any], space: str, child: str, via: str) -> None:
    resp = httpx.put(f"{peer.client_base}/_matrix/client/v3/rooms/{quote(space)}/state/m.space.child/{quote(child)}",
                     json={"via": [via]}, headers=_auth(user), timeout=30)
    assert resp.status_code == 200, resp.text


def _hierarchy(peer: Peer, user: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{peer.client_base}/_matrix/client/v1/rooms/{quote(room_id)}/hierarchy",
                     headers=_auth(user), timeout=60)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["rooms"])


def test_spaces_across_servers(parley: Peer, synapse: Peer) -> None:
    alice, bob = _register(parley), _register(synapse)
    space = {"preset": "public_chat", "creation_content": {"type": "m.space"}}
    # A Synapse space (v10, so that its room ID names its server) with a Parley room as a child.
    parley_room = _create(parley, alice, preset="public_chat", name="Parley side")
    synapse_space = _create(synapse, bob, room_version="10", name="Synapse space", **space)
    _add_child(synapse, bob, synapse_space, parley_room, parley.server_name)
    # Synapse asks Parley's federation /hierarchy about the child it does not know.
    rooms = {r["room_id"]: r for r in _hierarchy(synapse, bob, synapse_space)}
    assert rooms[parley_room]["name"] == "Parley side"
    assert rooms[parley_room]["num_joined_members"] == 1
    # Parley asks Synapse's federation /hierarchy about the space it does not know.
    rooms = {r["room_id"]: r for r in _hierarchy(parley, alice, synapse_space)}
    assert rooms[synapse_space]["name"] == "Synapse space"
    assert rooms[synapse_space]["room_type"] == "m.space"
    assert [c["state_key"] for c in rooms[synapse_space]["children_state"]] == [parley_room]
    assert rooms[parley_room]["name"] == "Parley side"
