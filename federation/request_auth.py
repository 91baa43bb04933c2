"""Request authentication between servers: the `X-Matrix` Authorization scheme.

Server-server API §Request Authentication: the origin signs a JSON object
`{method, uri, origin, destination, content?}` with its server key and sends
`Authorization: X-Matrix origin="a.example",destination="b.example",key="ed25519:k",sig="..."`.
The receiver fetches the origin's key (valid now) and checks the signature; a missing, malformed or
wrong header is a 401 M_UNAUTHORIZED, and so is a `destination` other than this server (an origin
that is not a server name at all is a 400 M_UNAUTHORIZED, as in Synapse).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_server_name
from homeserver.protocol.signing import SigningKey, key_id, sign_json, verify_json_signature

# (server_name, key_id, minimum_valid_until_ts) -> unpadded base64 verify key
KeyLookup = Callable[[str, str, int], Awaitable[str]]


@dataclass(frozen=True)
class XMatrix:
    origin: str
    destination: str | None
    key: str
    sig: str


def _unauthorized(why: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", why)


def _auth_params(text: str) -> dict[str, str]:
    """RFC 9110 auth-params: `name=token` or `name="quoted \\"string\\""`, comma separated."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise _unauthorized("Malformed X-Matrix parameter")
        name = text[i:eq].strip().lower()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                raise _unauthorized("Unterminated quoted string in X-Matrix header")
            i += 1
            val = "".join(value)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            val = text[i:end].strip()
            i = end
        if not name or name in out:
            raise _unauthorized("Malformed or repeated X-Matrix parameter")
        out[name] = val
    return out


def parse_x_matrix(header: str) -> XMatrix:
    """The parameters of one `Authorization: X-Matrix ...` header (401 when malformed)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "x-matrix":
        raise _unauthorized("Authorization scheme must be X-Matrix")
    params = _auth_params(rest)
    missing = [p for p in ("origin", "key", "sig") if not params.get(p)]
    if missing:
        raise _unauthorized(f"X-Matrix header lacks {', '.join(missing)}")
    if not is_valid_server_name(params["origin"]):
        # A 400, as Synapse answers (and SyTest expects): the request is malformed, not forged.
        raise MatrixError(400, "M_UNAUTHORIZED", "X-Matrix origin is not a valid server name")
    return XMatrix(params["origin"], params.get("destination") or None, params["key"], params["sig"])


def request_json(method: str, uri: str, origin: str, destination: str, content: Any = None) -> dict[str, Any]:
    """The object whose signature authenticates a request (`content` only when there is a body)."""
    obj: dict[str, Any] = {"method": method.upper(), "uri": uri, "origin": origin, "destination": destination}
    if content is not None:
        obj["content"] = content
    return obj


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_header(key: SigningKey, origin: str, destination: str, method: str, uri: str,
                         content: Any = None) -> str:
    """`X-Matrix origin=..,destination=..,key=..,sig=..` for an outbound request."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, key)
    sig = signed["signatures"][origin][key_id(key)]
    return (f"X-Matrix origin={_quote(origin)},destination={_quote(destination)},"
            f"key={_quote(key_id(key))},sig={_quote(sig)}")


class RequestAuthenticator:
    """Checks inbound X-Matrix headers against keys from `lookup` (the remote key cache)."""

    def __init__(self, server_name: str, lookup: KeyLookup, allows_domain: Callable[[str], bool],
                 clock: Callable[[], int]) -> None:
        self.server_name = server_name
        self.lookup = lookup
        self.allows_domain = allows_domain
        self.clock = clock

    async def authenticate(self, method: str, uri: str, headers: list[str], content: Any = None) -> str:
        """The origin of a request whose X-Matrix signature checks out; 401 otherwise.

        `headers` are the request's Authorization header values; the first valid one counts."""
        if not headers:
            raise _unauthorized("Missing Authorization header")
        last: MatrixError | None = None
        for header in headers:
            try:
                return await self._check(parse_x_matrix(header), method, uri, content)
            except MatrixError as e:
                if e.errcode != "M_UNAUTHORIZED":
                    raise
                last = e
        assert last is not None
        raise last

    async def _check(self, auth: XMatrix, method: str, uri: str, content: Any) -> str:
        if auth.destination is not None and auth.destination != self.server_name:
            raise _unauthorized(f"Request is for {auth.destination}, not this server")
        if auth.origin == self.server_name:
            raise _unauthorized("Requests from this server's own name are not accepted")
        if not self.allows_domain(auth.origin):
            raise MatrixError(403, "M_FORBIDDEN", f"Federation with {auth.origin} is not allowed")
        try:
            verify_key = await self.lookup(auth.origin, auth.key, self.clock())
        except MatrixError as e:
            raise _unauthorized(f"No usable key {auth.key} for {auth.origin}: {e.error}") from None
        obj = request_json(method, uri, auth.origin, self.server_name, content)
        obj["signatures"] = {auth.origin: {auth.key: auth.sig}}
        verify_json_signature(obj, auth.origin, auth.key, verify_key)
        return auth.origin
