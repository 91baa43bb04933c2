"""POSTs to push gateways and Web Push services, through the shared refusal of private
addresses (homeserver/outbound.py): the URL's host is resolved and checked once, and the
request goes to that checked address (Host header and TLS SNI keep the name)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from homeserver.outbound import AddressPolicy, url_host
from homeserver.protocol.errors import MatrixError


@dataclass(frozen=True)
class PostResult:
    status: int  # 0: no answer (connection error, timeout); -1: the address is refused
    body: bytes
    error: str | None = None


class PushHttp:
    def __init__(self, policy: AddressPolicy, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.client = httpx.AsyncClient(timeout=timeout_s, transport=transport, follow_redirects=False)

    async def post(self, url: str, content: bytes, headers: dict[str, str]) -> PostResult:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ip = await self.policy.checked_address(host, port)
        except MatrixError as e:
            return PostResult(-1, b"", e.error)
        netloc = f"{url_host(ip)}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        h = dict(headers)
        h["Host"] = parts.netloc.rsplit("@", 1)[-1]
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            resp = await self.client.post(pinned, content=content, headers=h, extensions=extensions)
        except httpx.HTTPError as e:
            return PostResult(0, b"", f"{type(e).__name__}: {e}")
        return PostResult(resp.status_code, resp.content)

    async def close(self) -> None:
        await self.client.aclose()
