"""Outbound federation HTTP: discovery, address checks, TLS, X-Matrix signing, retries.

Every request goes through the same steps:
- the destination must be allowed (`domain_allowlist`) and is resolved by discovery.py;
- the host to connect to is resolved once and every address checked by the shared address
  policy (homeserver/outbound.py): private, loopback and link-local peers are refused unless inside
  `ip_range_allowlist`; the connection goes to the checked address, with the server's name in the
  Host header and as TLS SNI, and the certificate is verified against that name (system trust
  store plus `ca_file`);
- requests are signed with X-Matrix unless they are key queries;
- idempotent requests are retried with exponential backoff on network errors and 5xx answers;
- responses are read up to a size limit and must be JSON objects.
Redirects are not followed for the federation API; `.well-known` fetches follow a few, and each
hop is checked again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
import orjson

from federation.discovery import Destination, ServerResolver, SrvLookup, cache_seconds, dns_srv_lookup
from federation.request_auth import authorization_header
from homeserver.config_federation import FederationConfig
from homeserver.outbound import AddressPolicy, Resolver, system_resolve, url_host
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import SigningKey

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_WELL_KNOWN_BYTES = 50 * 1024
MAX_WELL_KNOWN_REDIRECTS = 5
TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
RETRIES = 2
RETRY_DELAY_S = 0.5
POOLS = 256
USER_AGENT = "Parley (Matrix homeserver)"


class RemoteError(MatrixError):
    """A peer answered with an error (or could not be reached: remote_status 0)."""

    def __init__(self, destination: str, remote_status: int, body: Any, why: str) -> None:
        errcode = body.get("errcode") if isinstance(body, dict) and isinstance(body.get("errcode"), str) else None
        status = 404 if remote_status == 404 else 502
        super().__init__(status, errcode if remote_status == 404 and errcode else
                         ("M_NOT_FOUND" if remote_status == 404 else "M_UNKNOWN"), why)
        self.destination = destination
        self.remote_status = remote_status
        self.remote_errcode = errcode
        self.remote_body = body


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The system trust store, plus the operator's extra CA file (test CAs, private PKI)."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


class FederationClient:
    def __init__(self, server_name: str, signing_key: SigningKey, config: FederationConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None, resolve_ip: Resolver = system_resolve,
                 srv_lookup: SrvLookup = dns_srv_lookup, retry_delay_s: float = RETRY_DELAY_S,
                 max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.config = config
        self.policy = AddressPolicy(config.ip_range_allowlist, resolve_ip)
        self.resolver = ServerResolver(self._fetch_well_known, srv_lookup)
        self.retry_delay_s = retry_delay_s
        self.max_response_bytes = max_response_bytes
        self._transport = transport
        self._tls = tls_context(config.ca_file) if transport is None else None
        # One connection pool per TLS name: a connection verified for one name is never reused
        # for another server that happens to live at the same address.
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()

    async def close(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for c in clients:
            await c.aclose()

    def _client(self, tls_name: str) -> httpx.AsyncClient:
        client = self._clients.get(tls_name)
        if client is not None:
            self._clients.move_to_end(tls_name)
            return client
        transport = self._transport or httpx.AsyncHTTPTransport(verify=self._tls or True, http2=False)
        client = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                                   timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        self._clients[tls_name] = client
        while len(self._clients) > POOLS:
            _, old = self._clients.popitem(last=False)
            asyncio.get_running_loop().create_task(old.aclose())
        return client

    # ------------------------------------------------------------------ requests

    async def get_json(self, destination: str, path: str, query: dict[str, Any] | None = None, *,
                       signed: bool = True, timeout_s: float | None = None) -> dict[str, Any]:
        return await self.request("GET", destination, path, query, signed=signed, timeout_s=timeout_s)

    async def post_json(self, destination: str, path: str, content: Any, query: dict[str, Any] | None = None, *,
                        signed: bool = True, idempotent: bool = False,
                        timeout_s: float | None = None) -> dict[str, Any]:
        return await self.request("POST", destination, path, query, content, signed=signed, idempotent=idempotent,
                                  timeout_s=timeout_s)

    async def put_json(self, destination: str, path: str, content: Any, query: dict[str, Any] | None = None, *,
                       idempotent: bool = True) -> dict[str, Any]:
        return await self.request("PUT", destination, path, query, content, idempotent=idempotent)

    async def request(self, method: str, destination: str, path: str, query: dict[str, Any] | None = None,
                      content: Any = None, *, signed: bool = True, idempotent: bool | None = None,
                      timeout_s: float | None = None) -> dict[str, Any]:
        """The JSON object a peer answers; RemoteError for errors, 403 for refused destinations."""
        if destination == self.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Federation requests to this server itself are not sent")
        if not self.config.allows_domain(destination):
            raise MatrixError(403, "M_FORBIDDEN", f"Federation with {destination} is not allowed")
        uri = path + ("?" + urlencode(query, doseq=True) if query else "")
        body = orjson.dumps(content) if content is not None else None
        attempts = 1 + (RETRIES if (idempotent if idempotent is not None else method == "GET") else 0)
        for attempt in range(attempts):
            try:
                return await self._once(method, destination, uri, content, body, signed, timeout_s)
            except RemoteError as e:
                retryable = e.remote_status == 0 or e.remote_status >= 500
                if not retryable or attempt == attempts - 1:
                    raise
            await asyncio.sleep(self.retry_delay_s * (4 ** attempt))
        raise AssertionError("unreachable")

    async def _once(self, method: str, destination: str, uri: str, content: Any, body: bytes | None,
                    signed: bool, timeout_s: float | None) -> dict[str, Any]:
        try:
            dest = await self.resolver.resolve(destination)
        except ValueError as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        ip = await self.policy.checked_address(dest.connect_host, dest.port)
        headers = {"Host": dest.host_header, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if signed:
            headers["Authorization"] = authorization_header(self.signing_key, self.server_name, destination,
                                                            method, uri, content)
        url = f"https://{url_host(ip)}:{dest.port}{uri}"
        return await self._send(destination, dest, method, url, headers, body, timeout_s)

    @asynccontextmanager
    async def stream(self, destination: str, uri: str, *, signed: bool = True,
                     timeout_s: float | None = None) -> AsyncIterator[httpx.Response]:
        """A GET whose answer is read by the caller as it arrives (media): the same destination
        checks, address policy, TLS and signing as `request`, no retries. RemoteError when the
        peer cannot be reached."""
        if destination == self.server_name or not self.config.allows_domain(destination):
            raise MatrixError(403, "M_FORBIDDEN", f"Federation with {destination} is not allowed")
        try:
            dest = await self.resolver.resolve(destination)
        except ValueError as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        ip = await self.policy.checked_address(dest.connect_host, dest.port)
        headers = {"Host": dest.host_header, "User-Agent": USER_AGENT}
        if signed:
            headers["Authorization"] = authorization_header(self.signing_key, self.server_name, destination,
                                                            "GET", uri, None)
        async with self._get_streamed(destination, dest.tls_name, f"https://{url_host(ip)}:{dest.port}{uri}",
                                      headers, timeout_s) as resp:
            yield resp

    @asynccontextmanager
    async def stream_url(self, url: str, timeout_s: float | None = None) -> AsyncIterator[httpx.Response]:
        """An unsigned GET of an https URL a peer pointed us to (a media `Location`), its host
        checked by the address policy like every other outbound connection."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise RemoteError(parts.hostname or "", 502, None, "Only https redirects are followed")
        host, port = parts.hostname, parts.port or 443
        ip = await self.policy.checked_address(host, port)
        target = f"https://{url_host(ip)}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": USER_AGENT}
        async with self._get_streamed(host, host, target, headers, timeout_s) as resp:
            yield resp

    @asynccontextmanager
    async def _get_streamed(self, peer: str, tls_name: str, url: str, headers: dict[str, str],
                            timeout_s: float | None) -> AsyncIterator[httpx.Response]:
        """A GET to an already checked address, its body left for the caller to read."""
        ext: dict[str, Any] = {"sni_hostname": tls_name}
        if timeout_s is not None:
            ext["timeout"] = httpx.Timeout(timeout_s).as_dict()
        client = self._client(tls_name)
        req = client.build_request("GET", url, headers=headers, extensions=ext)
        try:
            resp = await client.send(req, stream=True)
        except httpx.HTTPError as e:
            raise RemoteError(peer, 0, None, f"Could not reach {peer}: {type(e).__name__}") from None
        try:
            yield resp
        finally:
            await resp.aclose()

    async def _send(self, destination: str, dest: Destination, method: str, url: str, headers: dict[str, str],
                    body: bytes | None, timeout_s: float | None) -> dict[str, Any]:
        client = self._client(dest.tls_name)
        ext: dict[str, Any] = {"sni_hostname": dest.tls_name}
        if timeout_s is not None:
            ext["timeout"] = httpx.Timeout(timeout_s).as_dict()
        try:
            req = client.build_request(method, url, headers=headers, content=body, extensions=ext)
            resp = await client.send(req, stream=True)
            try:
                raw = await self._read_capped(resp, self.max_response_bytes)
            finally:
                await resp.aclose()
        except httpx.HTTPError as e:
            raise RemoteError(destination, 0, None, f"Could not reach {destination}: {type(e).__name__}") from None
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        if resp.status_code >= 300:
            raise RemoteError(destination, resp.status_code, parsed,
                              f"{destination} answered {resp.status_code}")
        if not isinstance(parsed, dict):
            raise RemoteError(destination, 502, None, f"{destination} did not answer with a JSON object")
        return parsed

    @staticmethod
    async def _read_capped(resp: httpx.Response, limit: int) -> bytes:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RemoteError("", 502, None, "Response too large")
        data = bytearray()
        async for chunk in resp.aiter_bytes():
            data += chunk
            if len(data) > limit:
                raise RemoteError("", 502, None, "Response too large")
        return bytes(data)

    # ------------------------------------------------------------------ .well-known

    async def _fetch_well_known(self, hostname: str) -> tuple[str | None, float]:
        """`m.server` of https://<hostname>/.well-known/matrix/server, following checked redirects."""
        url = f"https://{hostname}/.well-known/matrix/server"
        for _ in range(MAX_WELL_KNOWN_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                return None, 3600.0
            host = parts.hostname
            port = parts.port or 443
            ip = await self.policy.checked_address(host, port)
            connect = f"https://{url_host(ip)}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
            host_header = parts.netloc.rsplit("@", 1)[-1]
            client = self._client(host)
            req = client.build_request("GET", connect, headers={"Host": host_header, "User-Agent": USER_AGENT},
                                       extensions={"sni_hostname": host,
                                                   "timeout": httpx.Timeout(CONNECT_TIMEOUT_S).as_dict()})
            resp = await client.send(req, stream=True)
            try:
                if resp.is_redirect and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code != 200:
                    return None, 3600.0
                raw = await self._read_capped(resp, MAX_WELL_KNOWN_BYTES)
            finally:
                await resp.aclose()
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None, 3600.0
            server = doc.get("m.server") if isinstance(doc, dict) else None
            return (server if isinstance(server, str) else None), cache_seconds(resp.headers.get("cache-control"))
        return None, 3600.0
