"""Where an inference request goes, and the SSRF guard for endpoints users name themselves.

A user endpoint under the `public-only` policy is resolved once, every address must be public
(or inside the admin's allow-list), and the connection goes to the checked address with the
name kept in the Host header and TLS SNI (homeserver/outbound.py's rule). Redirects are never
followed blindly: each hop is checked the same way before it is requested.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from homeserver.outbound import AddressPolicy, url_host
from homeserver.protocol.errors import MatrixError

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class Endpoint:
    """An inference server: base URL (without /v1), API style, bearer token, and the address
    policy its connections must pass (None: the admin's own endpoint, or policy `any`)."""

    url: str
    api_style: str
    token: str | None = None
    policy: AddressPolicy | None = None

    def path(self, p: str) -> str:
        return self.url + p


def normalize_url(url: str, api_style: str) -> str:
    """The base URL without a trailing slash or an OpenAI-style `/v1`, which users often paste."""
    base = url.rstrip("/")
    if api_style == "openai" and base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base


def check_url_syntax(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MatrixError(400, "M_INVALID_PARAM", "The endpoint must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise MatrixError(400, "M_INVALID_PARAM", "Put the token in 'token', not in the URL")


async def pinned_request(client: httpx.AsyncClient, ep: Endpoint, method: str, url: str,
                         json: object | None, headers: dict[str, str]) -> httpx.Request:
    """The request to send for `url`: to the checked address when the endpoint has a policy."""
    h = dict(headers)
    if ep.token:
        h["Authorization"] = f"Bearer {ep.token}"
    if ep.policy is None:
        return client.build_request(method, url, json=json, headers=h)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = await ep.policy.checked_address(host, port)
    netloc = f"{url_host(ip)}:{port}"
    h["Host"] = parts.netloc.rsplit("@", 1)[-1]
    ext = {"sni_hostname": host} if parts.scheme == "https" else {}
    target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return client.build_request(method, target, json=json, headers=h, extensions=ext)


async def send_checked(client: httpx.AsyncClient, ep: Endpoint, method: str, url: str,
                       json: object | None = None, headers: dict[str, str] | None = None,
                       stream: bool = False) -> httpx.Response:
    """Send, following at most MAX_REDIRECTS redirects, each checked like the first URL.
    A 307/308 repeats the method and body; other redirects become a GET (as browsers do)."""
    for _ in range(MAX_REDIRECTS + 1):
        req = await pinned_request(client, ep, method, url, json, headers or {})
        resp = await client.send(req, stream=stream)
        if resp.status_code not in (301, 302, 303, 307, 308) or "location" not in resp.headers:
            return resp
        await resp.aclose()
        nxt = urljoin(url, resp.headers["location"])
        check_url_syntax(nxt)
        if urlsplit(nxt).netloc != urlsplit(url).netloc and ep.token:
            # Never hand the user's token to another host.
            ep = Endpoint(ep.url, ep.api_style, None, ep.policy)
        if resp.status_code not in (307, 308):
            method, json = "GET", None
        url = nxt
    raise MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR", "The inference server redirected too often")
