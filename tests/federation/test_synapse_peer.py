"""Parley and a real Synapse on loopback, both with TLS federation listeners and a test CA:
keys, signed requests and the read endpoints, in both directions."""

from __future__ import annotations

import secrets
import signal
import ssl
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from federation.client import FederationClient, RemoteError
from federation.request_auth import authorization_header
from homeserver.config_federation import FederationConfig
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import generate_signing_key, verify_json_signature
from tests.federation.peers import Peer, TestCA, start_parley
from tests.spec_schema import validate_response


def _register(peer: Peer, name: str | None = None) -> dict[str, Any]:
    body = {"username": name or f"u{secrets.token_hex(4)}", "password": "correct horse battery",
            "auth": {"type": "m.login.dummy"}}
    resp = httpx.post(f"{peer.client_base}/_matrix/client/v3/register", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _auth(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def _set_name(peer: Peer, user: dict[str, Any], name: str) -> None:
    resp = httpx.put(f"{peer.client_base}/_matrix/client/v3/profile/{quote(user['user_id'])}/displayname",
                     json={"displayname": name}, headers=_auth(user), timeout=30)
    assert resp.status_code == 200, resp.text


def _room_with_alias(peer: Peer, user: dict[str, Any], local: str, public: bool = False) -> str:
    body: dict[str, Any] = {"room_alias_name": local, "name": f"room {local}"}
    if public:
        body["visibility"] = "public"
        body["preset"] = "public_chat"
    resp = httpx.post(f"{peer.client_base}/_matrix/client/v3/createRoom", json=body, headers=_auth(user), timeout=30)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["room_id"])


def _fed(peer: Peer, test_ca: TestCA, method: str, path: str, **kw: Any) -> httpx.Response:
    tls = ssl.create_default_context(cafile=str(test_ca.ca_file))
    return httpx.request(method, f"https://{peer.server_name}{path}", verify=tls, timeout=30, **kw)


def test_parley_serves_its_keys_over_tls(parley: Peer, test_ca: TestCA) -> None:
    resp = _fed(parley, test_ca, "GET", "/_matrix/key/v2/server")
    assert resp.status_code == 200
    body = resp.json()
    validate_response("GET", "/_matrix/key/v2/server", 200, body)
    assert body["server_name"] == parley.server_name
    (kid, entry), = body["verify_keys"].items()
    verify_json_signature(body, parley.server_name, kid, entry["key"])
    assert body["old_verify_keys"] == {}
    # The TLS listener serves the client API as well (SyTest is pointed at it).
    assert _fed(parley, test_ca, "GET", "/_matrix/client/versions").status_code == 200


def test_synapse_fetches_parley_keys_and_vouches_for_them(parley: Peer, synapse: Peer, test_ca: TestCA) -> None:
    ours = _fed(parley, test_ca, "GET", "/_matrix/key/v2/server").json()
    (kid, _), = ours["verify_keys"].items()
    # Synapse as a notary for Parley: it fetches our keys over TLS (naming the key makes it
    # fetch rather than answer from its cache) and countersigns them once our signature checks out.
    resp = _fed(synapse, test_ca, "POST", "/_matrix/key/v2/query",
                json={"server_keys": {parley.server_name: {kid: {"minimum_valid_until_ts": 0}}}})
    assert resp.status_code == 200, resp.text
    keys = [k for k in resp.json()["server_keys"] if k["server_name"] == parley.server_name]
    assert keys and keys[0]["verify_keys"] == ours["verify_keys"]
    assert synapse.server_name in keys[0]["signatures"]


def test_synapse_queries_a_parley_profile_with_signed_requests(parley: Peer, synapse: Peer) -> None:
    alice = _register(parley)
    _set_name(parley, alice, "Alice of Parley")
    resp = httpx.get(f"{synapse.client_base}/_matrix/client/v3/profile/{quote(alice['user_id'])}", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["displayname"] == "Alice of Parley"
    missing = f"@nobody{secrets.token_hex(3)}:{parley.server_name}"
    resp = httpx.get(f"{synapse.client_base}/_matrix/client/v3/profile/{quote(missing)}", timeout=30)
    assert resp.status_code == 404


def test_synapse_resolves_a_parley_alias(parley: Peer, synapse: Peer) -> None:
    alice = _register(parley)
    local = f"par{secrets.token_hex(3)}"
    room_id = _room_with_alias(parley, alice, local)
    alias = f"#{local}:{parley.server_name}"
    resp = httpx.get(f"{synapse.client_base}/_matrix/client/v3/directory/room/{quote(alias)}", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["room_id"] == room_id
    assert parley.server_name in resp.json()["servers"]


def test_synapse_lists_parley_public_rooms(parley: Peer, synapse: Peer) -> None:
    alice = _register(parley)
    room_id = _room_with_alias(parley, alice, f"pub{secrets.token_hex(3)}", public=True)
    bob = _register(synapse)
    resp = httpx.post(f"{synapse.client_base}/_matrix/client/v3/publicRooms", params={"server": parley.server_name},
                      json={"limit": 100}, headers=_auth(bob), timeout=30)
    assert resp.status_code == 200, resp.text
    assert room_id in [r["room_id"] for r in resp.json()["chunk"]]


def test_parley_fetches_synapse_keys_as_a_notary(parley: Peer, synapse: Peer, test_ca: TestCA) -> None:
    theirs = _fed(synapse, test_ca, "GET", "/_matrix/key/v2/server").json()
    resp = httpx.post(f"{parley.client_base}/_matrix/key/v2/query",
                      json={"server_keys": {synapse.server_name: {}}}, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    validate_response("POST", "/_matrix/key/v2/query", 200, body)
    (entry,) = body["server_keys"]
    assert entry["verify_keys"] == theirs["verify_keys"]
    ours = _fed(parley, test_ca, "GET", "/_matrix/key/v2/server").json()
    (pkid, pkey), = ours["verify_keys"].items()
    verify_json_signature(entry, parley.server_name, pkid, pkey["key"])  # countersigned by us
    (skid, skey), = theirs["verify_keys"].items()
    verify_json_signature(entry, synapse.server_name, skid, skey["key"])  # and still signed by Synapse
    one = httpx.get(f"{parley.client_base}/_matrix/key/v2/query/{synapse.server_name}", timeout=30)
    validate_response("GET", f"/_matrix/key/v2/query/{synapse.server_name}", 200, one.json())
    assert one.json()["server_keys"][0]["verify_keys"] == theirs["verify_keys"]


def test_parley_queries_synapse_profile_and_directory(parley: Peer, synapse: Peer) -> None:
    bob = _register(synapse)
    _set_name(synapse, bob, "Bob of Synapse")
    resp = httpx.get(f"{parley.client_base}/_matrix/client/v3/profile/{quote(bob['user_id'])}", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"displayname": "Bob of Synapse"}
    local = f"syn{secrets.token_hex(3)}"
    room_id = _room_with_alias(synapse, bob, local)
    alias = f"#{local}:{synapse.server_name}"
    resp = httpx.get(f"{parley.client_base}/_matrix/client/v3/directory/room/{quote(alias)}", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["room_id"] == room_id
    resp = httpx.get(f"{parley.client_base}/_matrix/client/v3/directory/room/{quote('#nope:' + synapse.server_name)}",
                     timeout=30)
    assert resp.status_code == 404
    assert resp.json()["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize("case", ["unsigned", "forged", "unknown key", "wrong destination", "not X-Matrix"])
def test_parley_rejects_badly_signed_requests(parley: Peer, synapse: Peer, test_ca: TestCA, case: str) -> None:
    alice = _register(parley)
    uri = f"/_matrix/federation/v1/query/profile?user_id={quote(alice['user_id'])}"
    theirs = _fed(synapse, test_ca, "GET", "/_matrix/key/v2/server").json()
    (synapse_kid, _), = theirs["verify_keys"].items()
    impostor = generate_signing_key(synapse_kid.split(":", 1)[1])  # Synapse's key ID, not its key
    headers: dict[str, str] = {}
    if case == "forged":
        headers["Authorization"] = authorization_header(impostor, synapse.server_name, parley.server_name, "GET", uri)
    elif case == "unknown key":
        other = generate_signing_key("nosuchkey")
        headers["Authorization"] = authorization_header(other, synapse.server_name, parley.server_name, "GET", uri)
    elif case == "wrong destination":
        headers["Authorization"] = authorization_header(impostor, synapse.server_name, "elsewhere.example", "GET",
                                                        uri)
    elif case == "not X-Matrix":
        headers["Authorization"] = f"Bearer {alice['access_token']}"
    resp = _fed(parley, test_ca, "GET", uri, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.json()["errcode"] == "M_UNAUTHORIZED"
    assert isinstance(resp.json()["error"], str)


async def test_the_client_checks_addresses_and_certificates_for_real(synapse: Peer, test_ca: TestCA) -> None:
    key = generate_signing_key("c1")
    path = "/_matrix/federation/v1/version"
    strict = FederationClient("client.test", key, FederationConfig(enabled=True, ca_file=str(test_ca.ca_file)))
    with pytest.raises(MatrixError) as e:  # loopback is not allow-listed
        await strict.get_json(synapse.server_name, path, signed=False)
    assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")
    untrusting = FederationClient("client.test", key, FederationConfig(enabled=True,
                                                                       ip_range_allowlist=("127.0.0.0/8",)),
                                  retry_delay_s=0)
    with pytest.raises(RemoteError) as r:  # the test CA is not in the system store
        await untrusting.get_json(synapse.server_name, path, signed=False)
    assert r.value.remote_status == 0
    trusting = FederationClient("client.test", key, FederationConfig(
        enabled=True, ip_range_allowlist=("127.0.0.0/8",), ca_file=str(test_ca.ca_file)))
    try:
        assert (await trusting.get_json(synapse.server_name, path, signed=False))["server"]["name"] == "Synapse"
    finally:
        for c in (strict, untrusting, trusting):
            await c.close()


def test_parley_to_parley(parley: Peer, test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = start_parley(tmp_path_factory.mktemp("parley2"), test_ca)
    try:
        alice = _register(parley)
        _set_name(parley, alice, "Alice on one")
        carol = _register(other)
        _set_name(other, carol, "Carol on two")
        resp = httpx.get(f"{other.client_base}/_matrix/client/v3/profile/{quote(alice['user_id'])}", timeout=30)
        assert resp.status_code == 200 and resp.json() == {"displayname": "Alice on one"}, resp.text
        resp = httpx.get(f"{parley.client_base}/_matrix/client/v3/profile/{quote(carol['user_id'])}", timeout=30)
        assert resp.status_code == 200 and resp.json() == {"displayname": "Carol on two"}, resp.text
        # Each now holds the other's key, and vouches for it as a notary.
        theirs = _fed(other, test_ca, "GET", "/_matrix/key/v2/server").json()
        vouched = httpx.get(f"{parley.client_base}/_matrix/key/v2/query/{other.server_name}", timeout=30).json()
        assert vouched["server_keys"][0]["verify_keys"] == theirs["verify_keys"]
    finally:
        other.stop()


def test_shutdown_is_not_held_by_an_idle_tls_peer(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> None:
    peer = start_parley(tmp_path_factory.mktemp("parley-stop"), test_ca)
    try:
        # A peer that keeps its connection open and never reads (so never answers close_notify).
        with httpx.Client(verify=ssl.create_default_context(cafile=str(test_ca.ca_file))) as idle:
            assert idle.get(f"https://{peer.server_name}/_matrix/key/v2/server").status_code == 200
            started = time.monotonic()
            peer.proc.send_signal(signal.SIGTERM)
            peer.proc.wait(25)
            assert time.monotonic() - started < 12  # graceful period + 2 s, not asyncio's 30 s
        assert peer.proc.returncode == 0
        assert "Traceback" not in peer.log.read_text()
    finally:
        peer.stop()
