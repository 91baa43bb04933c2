"""URL previews (off by default): fetch a page and return its OpenGraph-ish summary.

Every address the host name resolves to must be public, unless it falls in the configured
allow-list; redirects are followed by hand so that each hop is checked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from homeserver.protocol.errors import MatrixError

MAX_BYTES = 1024 * 1024
TIMEOUT_S = 5.0
MAX_REDIRECTS = 3
CACHE_S = 3600


class _OG(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.props: dict[str, str] = {}
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta":
            key = a.get("property") or a.get("name")
            if key and a.get("content") is not None and (key.startswith("og:") or key == "description"):
                self.props.setdefault(key, a["content"] or "")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


class UrlPreviewer:
    def __init__(self, enabled: bool, allow_cidrs: tuple[str, ...]) -> None:
        self.enabled = enabled
        self.allow = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _allowed_ip(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        if any(addr in net for net in self.allow):
            return True
        return addr.is_global and not addr.is_multicast

    async def _check_host(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MatrixError(400, "M_INVALID_PARAM", "Only http(s) URLs can be previewed")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except OSError:
            raise MatrixError(502, "M_UNKNOWN", "Could not resolve the host") from None
        ips = {info[4][0] for info in infos}
        if not ips or not all(self._allowed_ip(ip) for ip in ips):
            raise MatrixError(403, "M_FORBIDDEN", "That address may not be previewed")

    async def preview(self, url: str) -> dict[str, Any]:
        if not self.enabled:
            raise MatrixError(403, "M_FORBIDDEN", "URL previews are disabled on this server")
        cached = self._cache.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        current = url
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as http:
            for _ in range(MAX_REDIRECTS + 1):
                await self._check_host(current)
                try:
                    async with http.stream("GET", current, headers={"User-Agent": "Parley URL preview"}) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            current = urljoin(current, resp.headers["location"])
                            continue
                        if resp.status_code != 200:
                            raise MatrixError(502, "M_UNKNOWN", f"Remote answered {resp.status_code}")
                        body = bytearray()
                        async for chunk in resp.aiter_bytes():
                            body += chunk
                            if len(body) > MAX_BYTES:
                                break
                        ctype = resp.headers.get("content-type", "")
                except httpx.HTTPError as e:
                    raise MatrixError(502, "M_UNKNOWN", f"Could not fetch the URL: {type(e).__name__}") from None
                break
            else:
                raise MatrixError(502, "M_UNKNOWN", "Too many redirects")
        out: dict[str, Any] = {}
        if "html" in ctype:
            parser = _OG()
            parser.feed(body.decode("utf-8", errors="replace"))
            out = {k: v for k, v in parser.props.items() if k.startswith("og:")}
            if "og:title" not in out and parser.title.strip():
                out["og:title"] = parser.title.strip()
            if "og:description" not in out and "description" in parser.props:
                out["og:description"] = parser.props["description"]
        self._cache[url] = (time.monotonic() + CACHE_S, out)
        return out
