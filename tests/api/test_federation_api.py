"""Federation endpoints in-process (SQLite and PostgreSQL): keys, notary, signed read endpoints.

A "remote" server here is a signing key whose /_matrix/key/v2/server answers come from an
in-memory transport handed to the homeserver's federation client."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from federation.keys import local_key_response
from federation.request_auth import authorization_header
from federation.service import Federation
from homeserver.app import Homeserver
from homeserver.config_federation import FederationConfig
from homeserver.protocol.signing import SigningKey, generate_signing_key, key_id, verify_json_signature
from tests.conftest import MatrixClient

FED_ON = pytest.mark.parametrize("config_overrides", [{"federation": FederationConfig(enabled=True)}])
REMOTE = "remote.example"
REMOTE_KEY = generate_signing_key("r1")


def remote_keys_handler(served: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_matrix/key/v2/server":
            served.append(request.headers["host"])
        if request.headers["host"] == REMOTE and request.url.path == "/_matrix/key/v2/server":
            return httpx.Response(200, json=local_key_response(REMOTE, REMOTE_KEY, [], int(time.time() * 1000)))
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})

    return handler


def use_transport(hs: Homeserver, handler: Callable[[httpx.Request], httpx.Response]) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    async def no_srv(name: str) -> list[tuple[str, int]]:
        return []

    hs.federation = Federation(hs.server_name, hs.config.federation, hs.signing_key, hs.retired_keys,
                               hs.stores.server_keys, transport=httpx.MockTransport(handler), resolve_ip=resolve,
                               srv_lookup=no_srv, retry_delay_s=0)


def signed(key: SigningKey, origin: str, destination: str, method: str, uri: str,
           content: Any = None) -> dict[str, str]:
    return {"Authorization": authorization_header(key, origin, destination, method, uri, content)}


async def test_federation_endpoints_are_off_by_default(client: MatrixClient) -> None:
    for path in ("/_matrix/key/v2/server", "/_matrix/federation/v1/version", "/.well-known/matrix/server"):
        resp = await client.get(path, validate=False)
        assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED", path


@FED_ON
async def test_own_keys_and_version(client: MatrixClient, hs: Homeserver) -> None:
    body = await client.ok("GET", "/_matrix/key/v2/server")
    assert body["server_name"] == hs.server_name and body["old_verify_keys"] == {}
    kid = key_id(hs.signing_key)
    verify_json_signature(body, hs.server_name, kid, body["verify_keys"][kid]["key"])
    assert body["valid_until_ts"] > int(time.time() * 1000) + 3600_000
    assert (await client.ok("GET", f"/_matrix/key/v2/server/{kid}"))["verify_keys"] == body["verify_keys"]
    version = await client.ok("GET", "/_matrix/federation/v1/version")
    assert version["server"]["name"] == "Parley"
    # Asking this server, as a notary, about itself.
    own = await client.ok("GET", f"/_matrix/key/v2/query/{hs.server_name}")
    assert own["server_keys"][0]["verify_keys"] == body["verify_keys"]
    resp = await client.get("/.well-known/matrix/server")
    assert resp.status_code == 404


@pytest.mark.parametrize("config_overrides", [
    {"federation": FederationConfig(enabled=True, well_known_server="fed.example:443")}])
async def test_well_known_server_delegation(client: MatrixClient) -> None:
    assert await client.ok("GET", "/.well-known/matrix/server") == {"m.server": "fed.example:443"}


@FED_ON
async def test_notary_serves_remote_keys_countersigned(client: MatrixClient, hs: Homeserver) -> None:
    served: list[str] = []
    use_transport(hs, remote_keys_handler(served))
    rkid = key_id(REMOTE_KEY)
    body = await client.ok("POST", "/_matrix/key/v2/query",
                           {"server_keys": {REMOTE: {rkid: {"minimum_valid_until_ts": 0}}, "gone.example": {}}})
    (entry,) = body["server_keys"]  # gone.example cannot be reached: left out
    verify_json_signature(entry, REMOTE, rkid, entry["verify_keys"][rkid]["key"])
    ours = key_id(hs.signing_key)
    own = (await client.ok("GET", "/_matrix/key/v2/server"))["verify_keys"][ours]["key"]
    verify_json_signature(entry, hs.server_name, ours, own)
    assert served.count(REMOTE) == 1
    # Cached now: the GET forms answer without asking the remote again.
    for path in (f"/_matrix/key/v2/query/{REMOTE}", f"/_matrix/key/v2/query/{REMOTE}/{quote(rkid)}"):
        again = await client.ok("GET", path)
        assert again["server_keys"][0]["verify_keys"] == entry["verify_keys"]
    assert served.count(REMOTE) == 1
    # A key the server does not have: one refresh is tried, and what it has is shown as it is.
    other = await client.ok("GET", f"/_matrix/key/v2/query/{REMOTE}/ed25519:other")
    assert all("ed25519:other" not in k["verify_keys"] for k in other["server_keys"])
    assert served.count(REMOTE) == 2
    for bad in ({"server_keys": []}, {"server_keys": {"not a name!": {}}}, {}):
        resp = await client.post("/_matrix/key/v2/query", bad)
        assert resp.status_code == 400 and resp.json()["errcode"].startswith("M_"), bad


@FED_ON
async def test_signed_read_endpoints(client: MatrixClient, hs: Homeserver) -> None:
    use_transport(hs, remote_keys_handler([]))
    alice = await client.register("alice")
    await alice.ok("PUT", f"/_matrix/client/v3/profile/{alice.user_id}/displayname", {"displayname": "Alice"})
    room_id = await alice.create_room(room_alias_name="lobby", visibility="public", preset="public_chat",
                                      name="Lobby")
    me = hs.server_name
    profile_uri = f"/_matrix/federation/v1/query/profile?user_id={quote(alice.user_id)}"

    resp = await client.get(profile_uri)
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED"
    impostor = generate_signing_key("r1")
    resp = await client.get(profile_uri, headers=signed(impostor, REMOTE, me, "GET", profile_uri))
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED"

    resp = await client.get(profile_uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", profile_uri))
    assert resp.status_code == 200 and resp.json() == {"displayname": "Alice"}
    uri = profile_uri + "&field=displayname"
    resp = await client.get(uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", uri))
    assert resp.json() == {"displayname": "Alice"}
    uri = f"/_matrix/federation/v1/query/profile?user_id={quote('@nobody:' + me)}"
    resp = await client.get(uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", uri))
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    uri = f"/_matrix/federation/v1/query/profile?user_id={quote('@bob:' + REMOTE)}"
    resp = await client.get(uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", uri))
    assert resp.status_code == 400

    uri = f"/_matrix/federation/v1/query/directory?room_alias={quote('#lobby:' + me)}"
    resp = await client.get(uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", uri))
    assert resp.status_code == 200 and resp.json() == {"room_id": room_id, "servers": [me]}
    uri = f"/_matrix/federation/v1/query/directory?room_alias={quote('#nothing:' + me)}"
    resp = await client.get(uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", uri))
    assert resp.status_code == 404

    uri = "/_matrix/federation/v1/publicRooms?limit=10"
    resp = await client.get(uri, headers=signed(REMOTE_KEY, REMOTE, me, "GET", uri))
    assert resp.status_code == 200 and [r["room_id"] for r in resp.json()["chunk"]] == [room_id]
    body = {"limit": 5, "filter": {"generic_search_term": "lobby"}}
    uri = "/_matrix/federation/v1/publicRooms"
    resp = await client.post(uri, body, headers=signed(REMOTE_KEY, REMOTE, me, "POST", uri, body))
    assert resp.status_code == 200 and resp.json()["chunk"][0]["room_id"] == room_id
    # The body is part of what is signed.
    resp = await client.post(uri, {"limit": 6}, headers=signed(REMOTE_KEY, REMOTE, me, "POST", uri, body))
    assert resp.status_code == 401
    bad = {"limit": "x"}
    resp = await client.post(uri, bad, headers=signed(REMOTE_KEY, REMOTE, me, "POST", uri, bad))
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
