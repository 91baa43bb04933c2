"""Remote key fetching: verification, the database cache, expiry, old keys and notaries
(SQLite and PostgreSQL, with in-memory peers and a controllable clock)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from federation.client import FederationClient
from federation.keys import KeyFetcher, check_key_response, local_key_response
from homeserver.app import Homeserver
from homeserver.config_federation import FederationConfig
from homeserver.keys.signing_key import RetiredKey
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import generate_signing_key, key_id, sign_json, verify_key_b64

T0 = 1_800_000_000_000
DAY = 24 * 3600 * 1000
REMOTE = "remote.example"
NOTARY = "notary.example"


class Peers:
    """In-memory servers answering key requests; counts what was asked."""

    def __init__(self) -> None:
        self.now = T0
        self.remote_key = generate_signing_key("r1")
        self.notary_key = generate_signing_key("n1")
        self.remote_up = True
        self.tamper = False
        self.notary_signs = True
        self.asked: list[tuple[str, str]] = []
        self.override: dict[str, Any] | None = None

    def remote_response(self) -> dict[str, Any]:
        if self.override is not None:
            return self.override
        resp = local_key_response(REMOTE, self.remote_key, [RetiredKey(generate_signing_key("r0"), T0 - DAY)],
                                  self.now)
        if self.tamper:
            resp["valid_until_ts"] += 1  # no longer what was signed
        return resp

    def handler(self, request: httpx.Request) -> httpx.Response:
        host, path = request.headers["host"], request.url.path
        if path.startswith("/.well-known"):
            return httpx.Response(404)
        self.asked.append((host, path))
        if host == REMOTE and path == "/_matrix/key/v2/server" and self.remote_up:
            return httpx.Response(200, json=self.remote_response())
        if host == NOTARY and path == "/_matrix/key/v2/server":
            return httpx.Response(200, json=local_key_response(NOTARY, self.notary_key, [], self.now))
        if host == NOTARY and path == "/_matrix/key/v2/query":
            entry = local_key_response(REMOTE, self.remote_key, [], self.now)
            if self.notary_signs:
                entry = sign_json(entry, NOTARY, self.notary_key)
            return httpx.Response(200, json={"server_keys": [entry]})
        return httpx.Response(503, json={"errcode": "M_UNKNOWN", "error": "down"})


def fetcher(hs: Homeserver, peers: Peers, notaries: tuple[str, ...] = ()) -> KeyFetcher:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    async def no_srv(name: str) -> list[tuple[str, int]]:
        return []

    client = FederationClient(hs.server_name, hs.signing_key, FederationConfig(enabled=True),
                              transport=httpx.MockTransport(peers.handler), resolve_ip=resolve, srv_lookup=no_srv,
                              retry_delay_s=0)
    return KeyFetcher(hs.server_name, hs.signing_key, [], hs.stores.server_keys, client, notaries,
                      clock=lambda: peers.now)


def direct_asks(peers: Peers) -> int:
    return peers.asked.count((REMOTE, "/_matrix/key/v2/server"))


async def test_keys_are_fetched_once_then_cached_in_memory_and_database(hs: Homeserver) -> None:
    peers = Peers()
    kid, vk = key_id(peers.remote_key), verify_key_b64(peers.remote_key)
    keys = fetcher(hs, peers)
    assert await keys.verify_key(REMOTE, kid, peers.now) == vk
    assert await keys.verify_key(REMOTE, kid, peers.now + DAY // 2) == vk
    assert direct_asks(peers) == 1
    # A new process (empty memory) finds them in the database.
    assert await fetcher(hs, peers).verify_key(REMOTE, kid, peers.now) == vk
    assert direct_asks(peers) == 1
    # Past valid_until_ts they are fetched again.
    peers.now += DAY + 1
    assert await keys.verify_key(REMOTE, kid, peers.now) == vk
    assert direct_asks(peers) == 2


async def test_old_keys_count_only_until_they_expired(hs: Homeserver) -> None:
    peers = Peers()
    keys = fetcher(hs, peers)
    await keys.verify_key(REMOTE, key_id(peers.remote_key), peers.now)
    assert await keys.verify_key(REMOTE, "ed25519:r0", T0 - DAY - 5)  # signed before it expired
    with pytest.raises(MatrixError) as e:
        await keys.verify_key(REMOTE, "ed25519:r0", T0)
    assert e.value.status == 401


async def test_tampered_or_unreachable_keys_are_refused_and_not_cached(hs: Homeserver) -> None:
    peers = Peers()
    peers.tamper = True
    keys = fetcher(hs, peers)
    with pytest.raises(MatrixError) as e:
        await keys.verify_key(REMOTE, key_id(peers.remote_key), peers.now)
    assert (e.value.status, e.value.errcode) == (401, "M_UNAUTHORIZED")
    assert await hs.stores.server_keys.get_key(REMOTE, key_id(peers.remote_key)) is None
    # A failed server is not asked again at once (no request storm), but after a short pause.
    peers.tamper = False
    with pytest.raises(MatrixError):
        await keys.verify_key(REMOTE, key_id(peers.remote_key), peers.now)
    assert direct_asks(peers) == 1
    peers.now += 31_000
    assert await keys.verify_key(REMOTE, key_id(peers.remote_key), peers.now)


async def test_notaries_are_asked_when_the_server_is_down(hs: Homeserver) -> None:
    peers = Peers()
    peers.remote_up = False
    keys = fetcher(hs, peers, notaries=(NOTARY,))
    kid = key_id(peers.remote_key)
    assert await keys.verify_key(REMOTE, kid, peers.now) == verify_key_b64(peers.remote_key)
    assert (NOTARY, "/_matrix/key/v2/query") in peers.asked
    # The notary's own key was fetched to check its countersignature.
    assert (NOTARY, "/_matrix/key/v2/server") in peers.asked


async def test_a_notary_answer_without_the_notary_signature_is_ignored(hs: Homeserver) -> None:
    peers = Peers()
    peers.remote_up = False
    peers.notary_signs = False
    keys = fetcher(hs, peers, notaries=(NOTARY,))
    with pytest.raises(MatrixError) as e:
        await keys.verify_key(REMOTE, key_id(peers.remote_key), peers.now)
    assert e.value.status == 401


def test_check_key_response_rules() -> None:
    key = generate_signing_key("a")
    good = local_key_response("s.example", key, [], T0)
    (entry,) = check_key_response(good, "s.example", T0)
    assert entry == (key_id(key), verify_key_b64(key), T0 + DAY, None)
    far = sign_json({**{k: v for k, v in good.items() if k != "signatures"}, "valid_until_ts": T0 + 30 * DAY},
                    "s.example", key)
    assert check_key_response(far, "s.example", T0)[0][2] == T0 + 7 * DAY  # capped at a week
    for bad in (good | {"server_name": "other.example"},
                {k: v for k, v in good.items() if k != "signatures"},
                sign_json({k: v for k, v in good.items() if k != "signatures"}, "s.example", generate_signing_key("a")),
                good | {"verify_keys": "x"}, []):
        with pytest.raises(MatrixError):
            check_key_response(bad, "s.example", T0)


async def test_a_notary_does_not_forget_a_key_its_server_stopped_listing(hs: Homeserver) -> None:
    peers = Peers()
    keys = fetcher(hs, peers)
    key1, key2 = generate_signing_key("key_1"), generate_signing_key("key_2")
    expired = peers.now - DAY

    def response(key: Any, until: int) -> dict[str, Any]:
        body = {"server_name": REMOTE, "valid_until_ts": until, "old_verify_keys": {},
                "verify_keys": {key_id(key): {"key": verify_key_b64(key)}}}
        return sign_json(body, REMOTE, key)

    peers.override = response(key1, expired)
    (first,) = await keys.query_server(REMOTE, ("ed25519:key_1",), 0)
    assert "ed25519:key_1" in first["verify_keys"] and hs.server_name in first["signatures"]
    # The origin now answers with another key only; asking for a fresher key_1 refetches...
    peers.override = response(key2, expired + 1000)
    await keys.query_server(REMOTE, ("ed25519:key_1",), peers.now)
    assert direct_asks(peers) == 2
    # ...but key_1's own response is still what the notary hands out, without asking again.
    (third,) = await keys.query_server(REMOTE, ("ed25519:key_1",), expired)
    assert list(third["verify_keys"]) == ["ed25519:key_1"]
    assert direct_asks(peers) == 2
    both = await keys.query_server(REMOTE, (), 0)
    assert sorted(k for r in both for k in r["verify_keys"]) == ["ed25519:key_1", "ed25519:key_2"]
