"""URL previews (off by default): fetch a page and return its OpenGraph summary.

This is a server-side request forgery surface, so every hop is guarded:
- only http(s), no credentials in the URL, at most MAX_REDIRECTS redirects, each re-checked;
- the host name is resolved once, *every* address must be public (or inside the configured
  allow-list), and the connection goes to one of those checked addresses (Host header and TLS
  SNI keep the name), so DNS rebinding between check and connect cannot redirect it;
- environment proxies are ignored (a proxy would resolve the name itself);
- bodies are capped at MAX_BYTES and the whole preview at TOTAL_S seconds.
An `og:image` is fetched the same way and stored as local media, so clients get an mxc:// URI.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from homeserver.outbound import AddressPolicy, Resolver, system_resolve
from homeserver.protocol.errors import MatrixError

MAX_BYTES = 1024 * 1024
MAX_IMAGE_BYTES = 10 * 1024 * 1024
TIMEOUT_S = 5.0
TOTAL_S = 15.0
MAX_REDIRECTS = 5
CACHE_S = 3600
CACHE_ENTRIES = 1000
MAX_VALUE_CHARS = 2000
USER_AGENT = "Parley URL preview (Matrix homeserver)"

ImageStore = Callable[[str, AsyncIterator[bytes], str], Awaitable[tuple[str, int]]]


class _OG(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.props: dict[str, str] = {}
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta":
            key = (a.get("property") or a.get("name") or "").strip().lower()
            content = a.get("content")
            if key and content is not None and (key.startswith("og:") or key == "description"):
                self.props.setdefault(key, content.strip()[:MAX_VALUE_CHARS])
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) < MAX_VALUE_CHARS:
            self.title += data


def parse_html(body: bytes, encoding: str) -> dict[str, str]:
    """og:* properties, with <title> and <meta name=description> as fallbacks."""
    try:
        text = body.decode(encoding, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    parser = _OG()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # malformed markup: keep what was parsed so far
        pass
    out = {k: v for k, v in parser.props.items() if k.startswith("og:")}
    title = " ".join(parser.title.split())
    if "og:title" not in out and title:
        out["og:title"] = title[:MAX_VALUE_CHARS]
    if "og:description" not in out and parser.props.get("description"):
        out["og:description"] = parser.props["description"]
    return out


class UrlPreviewer(AddressPolicy):
    def __init__(self, enabled: bool, allow_cidrs: tuple[str, ...], store_image: ImageStore | None = None,
                 resolver: Resolver = system_resolve) -> None:
        super().__init__(allow_cidrs, resolver)
        self.enabled = enabled
        self.store_image = store_image
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    async def _target(self, url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(URL to connect to, headers, httpx extensions) after checking every resolved address."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MatrixError(400, "M_INVALID_PARAM", "Only http(s) URLs can be previewed")
        if parts.username is not None or parts.password is not None:
            raise MatrixError(400, "M_INVALID_PARAM", "URLs with credentials cannot be previewed")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise MatrixError(400, "M_INVALID_PARAM", "Bad port in URL") from None
        host = parts.hostname
        ips = await self.resolve(host, port)
        if not ips or not all(self.allowed_ip(ip) for ip in ips):
            raise MatrixError(403, "M_FORBIDDEN", "That address may not be previewed")
        ip = ips[0].split("%", 1)[0]
        literal = f"[{ip}]" if ":" in ip else ip
        connect = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rsplit("@", 1)[-1]
        ext: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
        return connect, {"Host": host_header, "User-Agent": USER_AGENT}, ext

    async def _fetch(self, http: httpx.AsyncClient, url: str, limit: int,
                     sink: Callable[[httpx.Response, str], Awaitable[Any]]) -> Any:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            connect, headers, ext = await self._target(current)
            try:
                async with http.stream("GET", connect, headers=headers, extensions=ext) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        current = urljoin(current, resp.headers["location"])
                        continue
                    if resp.status_code != 200:
                        raise MatrixError(502, "M_UNKNOWN", f"Remote answered {resp.status_code}")
                    declared = resp.headers.get("content-length", "")
                    if declared.isascii() and declared.isdigit() and int(declared) > limit:
                        raise MatrixError(502, "M_TOO_LARGE", "Remote content is too large")
                    return await sink(resp, current)
            except httpx.HTTPError as e:
                raise MatrixError(502, "M_UNKNOWN", f"Could not fetch the URL: {type(e).__name__}") from None
        raise MatrixError(502, "M_UNKNOWN", "Too many redirects")

    async def preview(self, url: str, user_id: str) -> dict[str, Any]:
        if not self.enabled:
            raise MatrixError(403, "M_FORBIDDEN", "URL previews are disabled on this server")
        cached = self._cache.get(url)
        if cached and cached[0] > time.monotonic():
            self._cache.move_to_end(url)
            return cached[1]
        try:
            async with asyncio.timeout(TOTAL_S):
                out = await self._preview(url, user_id)
        except TimeoutError:
            raise MatrixError(504, "M_UNKNOWN", "Timed out fetching the URL") from None
        self._cache[url] = (time.monotonic() + CACHE_S, out)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return out

    async def _preview(self, url: str, user_id: str) -> dict[str, Any]:
        timeout = httpx.Timeout(TIMEOUT_S)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http:

            async def page(resp: httpx.Response, final: str) -> tuple[str, str, bytes, str]:
                ctype = resp.headers.get("content-type", "")
                body = bytearray()
                if "html" in ctype:
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) >= MAX_BYTES:  # enough for the <head>; stop reading
                            break
                return ctype, resp.charset_encoding or "utf-8", bytes(body), final

            ctype, encoding, body, final = await self._fetch(http, url, MAX_BYTES, page)
            base = ctype.split(";", 1)[0].strip().lower()
            if base.startswith("image/"):
                out: dict[str, Any] = {}
                await self._attach_image(http, final, user_id, out)
                return out
            if "html" not in base:
                return {}
            out = dict(parse_html(body, encoding))
            image = out.pop("og:image", None) or out.pop("og:image:url", None)
            out.pop("og:image:secure_url", None)
            if image:
                await self._attach_image(http, urljoin(final, image), user_id, out)
            return out

    async def _attach_image(self, http: httpx.AsyncClient, url: str, user_id: str, out: dict[str, Any]) -> None:
        """Store the image as local media and point og:image at it; silently skip on failure."""
        if self.store_image is None:
            return
        store = self.store_image

        async def sink(resp: httpx.Response, final: str) -> tuple[str, int]:
            ctype = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if not ctype.startswith("image/"):
                raise MatrixError(502, "M_UNKNOWN", "Not an image")

            async def chunks() -> AsyncIterator[bytes]:
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        raise MatrixError(502, "M_TOO_LARGE", "Image too large")
                    yield chunk

            mxc, size = await store(user_id, chunks(), ctype)
            out["og:image:type"] = ctype
            return mxc, size

        try:
            mxc, size = await self._fetch(http, url, MAX_IMAGE_BYTES, sink)
        except MatrixError:
            out.pop("og:image:type", None)
            return
        out["og:image"] = mxc
        out["matrix:image:size"] = size
