"""Server discovery and the outbound client, with an in-memory transport and fake DNS."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from federation.client import FederationClient, RemoteError
from federation.discovery import Destination, ServerResolver
from federation.request_auth import parse_x_matrix, request_json
from homeserver.config_federation import FederationConfig
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import generate_signing_key, verify_json_signature, verify_key_b64

PUBLIC_IP = "93.184.216.34"


class FakeDNS:
    def __init__(self, well_known: dict[str, str | None], srv: dict[str, list[tuple[str, int]]]) -> None:
        self.well_known = well_known
        self.srv = srv
        self.fetches: list[str] = []

    async def fetch(self, host: str) -> tuple[str | None, float]:
        self.fetches.append(host)
        if host not in self.well_known:
            raise httpx.ConnectError("no server")
        return self.well_known[host], 60.0

    async def lookup(self, name: str) -> list[tuple[str, int]]:
        return self.srv.get(name, [])


DNS = FakeDNS(
    well_known={"wk-port.example": "del.example:9000", "wk-ip.example": "5.6.7.8",
                "wk-srv.example": "del2.example", "wk-legacy.example": "del3.example",
                "wk-plain.example": "del4.example", "wk-bad.example": "not a name!"},
    srv={"_matrix-fed._tcp.del2.example": [("target2.example", 7000)],
         "_matrix._tcp.del3.example": [("target3.example", 7001)],
         "_matrix-fed._tcp.srv.example": [("target4.example", 7002)],
         "_matrix._tcp.srv.example": [("wrong.example", 1)],
         "_matrix._tcp.legacy.example": [("target5.example", 7003)],
         "_matrix-fed._tcp.wk-bad.example": [("target6.example", 7004)]},
)


@pytest.mark.parametrize(("name", "want"), [
    ("1.2.3.4", Destination("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
    ("1.2.3.4:99", Destination("1.2.3.4", 99, "1.2.3.4:99", "1.2.3.4")),
    ("[2001:db8::1]", Destination("2001:db8::1", 8448, "[2001:db8::1]", "2001:db8::1")),
    ("[2001:db8::1]:8449", Destination("2001:db8::1", 8449, "[2001:db8::1]:8449", "2001:db8::1")),
    ("a.example:1234", Destination("a.example", 1234, "a.example:1234", "a.example")),
    ("wk-port.example", Destination("del.example", 9000, "del.example:9000", "del.example")),
    ("wk-ip.example", Destination("5.6.7.8", 8448, "5.6.7.8", "5.6.7.8")),
    ("wk-srv.example", Destination("target2.example", 7000, "del2.example", "del2.example")),
    ("wk-legacy.example", Destination("target3.example", 7001, "del3.example", "del3.example")),
    ("wk-plain.example", Destination("del4.example", 8448, "del4.example", "del4.example")),
    ("wk-bad.example", Destination("target6.example", 7004, "wk-bad.example", "wk-bad.example")),
    ("srv.example", Destination("target4.example", 7002, "srv.example", "srv.example")),
    ("legacy.example", Destination("target5.example", 7003, "legacy.example", "legacy.example")),
    ("plain.example", Destination("plain.example", 8448, "plain.example", "plain.example")),
])
async def test_discovery_follows_the_spec_order(name: str, want: Destination) -> None:
    resolver = ServerResolver(DNS.fetch, DNS.lookup)
    assert await resolver.resolve(name) == want


async def test_well_known_answers_are_cached_until_they_expire() -> None:
    dns = FakeDNS({"wk.example": "del.example:1"}, {})
    now = [1000.0]
    resolver = ServerResolver(dns.fetch, dns.lookup, clock=lambda: now[0])
    await resolver.resolve("wk.example")
    await resolver.resolve("wk.example")
    assert dns.fetches == ["wk.example"]
    now[0] += 61  # FakeDNS answers with a 60 s lifetime
    dns.well_known["wk.example"] = "other.example:2"
    assert (await resolver.resolve("wk.example")).connect_host == "other.example"
    assert dns.fetches == ["wk.example", "wk.example"]
    await resolver.resolve("1.2.3.4")  # IP literals and explicit ports never ask
    await resolver.resolve("x.example:5")
    assert len(dns.fetches) == 2


def _client(handler: Any, *, allow: tuple[str, ...] = (), ips: dict[str, list[str]] | None = None,
            domains: tuple[str, ...] = (), max_bytes: int = 1 << 20) -> FederationClient:
    table = ips or {}

    async def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [PUBLIC_IP])

    cfg = FederationConfig(enabled=True, ip_range_allowlist=allow, domain_allowlist=domains)
    return FederationClient("me.example", generate_signing_key("k1"), cfg, transport=httpx.MockTransport(handler),
                            resolve_ip=resolve, srv_lookup=DNS.lookup, retry_delay_s=0, max_response_bytes=max_bytes)


async def test_requests_are_pinned_signed_and_named() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client = _client(handler)
    body = {"hello": "world"}
    assert await client.put_json("remote.example:8448", "/_matrix/federation/v1/x", body, {"q": "@a:b"}) == {"ok": True}
    (req,) = seen
    assert req.url.host == PUBLIC_IP and req.url.port == 8448
    assert req.headers["host"] == "remote.example:8448"
    assert req.extensions["sni_hostname"] == "remote.example"
    auth = parse_x_matrix(req.headers["authorization"])
    assert (auth.origin, auth.destination) == ("me.example", "remote.example:8448")
    signed = request_json("PUT", req.url.raw_path.decode(), "me.example", "remote.example:8448",
                          orjson.loads(req.content))
    signed["signatures"] = {"me.example": {auth.key: auth.sig}}
    verify_json_signature(signed, "me.example", auth.key, verify_key_b64(client.signing_key))
    assert req.url.raw_path.decode() == "/_matrix/federation/v1/x?q=%40a%3Ab"
    await client.close()


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "169.254.1.1", "::1", "fe80::1", "::ffff:192.168.0.1"])
async def test_private_addresses_are_refused_unless_allow_listed(ip: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={})

    client = _client(handler, ips={"inside.example": [PUBLIC_IP, ip]})
    with pytest.raises(MatrixError) as e:
        await client.get_json("inside.example:8448", "/x")
    assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")
    literal = f"[{ip}]" if ":" in ip else ip
    with pytest.raises(MatrixError):
        await client.get_json(f"{literal}:8448", "/x")
    assert calls == []
    allowed = _client(handler, allow=("127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10",
                                      "192.168.0.0/16"), ips={"inside.example": [ip]})
    assert await allowed.get_json("inside.example:8448", "/x") == {}
    assert len(calls) == 1


async def test_gets_are_retried_with_backoff_and_posts_are_not() -> None:
    answers = [502, 503, 200]
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        status = answers.pop(0) if answers else 500
        return httpx.Response(status, json={"done": True} if status == 200 else {"errcode": "M_UNKNOWN"})

    client = _client(handler)
    assert await client.get_json("r.example:1", "/x") == {"done": True}
    assert calls == ["GET", "GET", "GET"]
    answers[:] = [502]
    with pytest.raises(RemoteError) as e:
        await client.post_json("r.example:1", "/x", {})
    assert calls[3:] == ["POST"] and e.value.remote_status == 502 and e.value.status == 502


async def test_errors_sizes_and_shapes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/missing":
            return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "nope"})
        if request.url.path == "/big":
            return httpx.Response(200, content=b'{"a": "' + b"x" * 5000 + b'"}')
        if request.url.path == "/list":
            return httpx.Response(200, json=[1])
        return httpx.Response(200, content=b"not json")

    client = _client(handler, max_bytes=1000)
    with pytest.raises(RemoteError) as e:
        await client.get_json("r.example:1", "/missing")
    assert (e.value.status, e.value.errcode, e.value.remote_status) == (404, "M_NOT_FOUND", 404)
    for path in ("/big", "/list", "/garbage"):
        with pytest.raises(RemoteError) as e:
            await client.get_json("r.example:1", path)
        assert e.value.status == 502


async def test_domain_allowlist_and_own_name() -> None:
    client = _client(lambda r: httpx.Response(200, json={}), domains=("friend.example",))
    assert await client.get_json("friend.example", "/x") == {}
    with pytest.raises(MatrixError) as e:
        await client.get_json("stranger.example", "/x")
    assert e.value.status == 403
    with pytest.raises(MatrixError) as e:
        await client.get_json("me.example", "/x")
    assert e.value.status == 400


async def test_well_known_redirects_are_checked_again() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/x":
            return httpx.Response(200, json={"ok": request.headers["host"]})
        if request.headers["host"] == "hop.example":
            return httpx.Response(302, headers={"location": "https://inside.example/.well-known/matrix/server"})
        if request.headers["host"] == "inside.example":
            return httpx.Response(200, json={"m.server": "evil.example:1"})
        if request.headers["host"] == "good.example":
            return httpx.Response(301, headers={"location": "https://fine.example/wk"})
        if request.headers["host"] == "fine.example":
            return httpx.Response(200, json={"m.server": "delegated.example:4443"},
                                  headers={"cache-control": "max-age=120"})
        return httpx.Response(404, json={})

    client = _client(handler, ips={"inside.example": ["10.0.0.5"]})
    assert await client._fetch_well_known("good.example") == ("delegated.example:4443", 120.0)
    with pytest.raises(MatrixError):
        await client._fetch_well_known("hop.example")
    # Through discovery the refused hop means "no delegation": the name itself on 8448.
    assert await client.get_json("hop.example", "/x") == {"ok": "hop.example"}
    assert await client.get_json("good.example", "/x") == {"ok": "delegated.example:4443"}
