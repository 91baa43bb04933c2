"""Push rules API (Client-Server API §"Push Rules: API").

The path is parsed here rather than by route templates: rule IDs are percent-encoded and may
not contain '/', and the old API distinguishes `/pushrules/global/` (the ruleset) from
`/pushrules/global` (an error) and `/pushrules/global/room/` (one kind) from `/pushrules/global/room`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.push_rules import KINDS

PREFIX = "/_matrix/client/v3/pushrules"
ATTRS = ("enabled", "actions")


@dataclass(frozen=True)
class RulePath:
    scope: str | None = None
    kind: str | None = None
    rule_id: str | None = None
    attr: str | None = None
    trailing_slash: bool = False


def _bad(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def parse_rule_path(raw: str) -> RulePath:
    """`raw` is the percent-encoded path after `/pushrules`, e.g. `/global/room/%23a%3Ab`."""
    if raw in ("", "/"):
        return RulePath(trailing_slash=raw == "/")
    parts = raw[1:].split("/")
    trailing = parts[-1] == ""
    if trailing:
        parts = parts[:-1]
    if len(parts) > 4:
        raise _bad("Too many path segments")
    values: list[str | None] = [unquote(p) for p in parts]
    if values[0] != "global":
        raise _bad("Only the 'global' scope exists")
    if len(values) > 1 and values[1] not in KINDS:
        raise _bad(f"Unknown rule kind {values[1]!r}")
    if len(values) > 2 and (not values[2] or "/" in values[2] or "\\" in values[2]):
        raise _bad("Invalid rule ID")
    if len(values) > 3 and values[3] not in ATTRS:
        raise _bad(f"Unknown rule attribute {values[3]!r}")
    padded = values + [None] * (4 - len(values))
    return RulePath(padded[0], padded[1], padded[2], padded[3], trailing_slash=trailing)


def _path(request: Request) -> RulePath:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    try:
        text = raw.decode("utf-8").split("?", 1)[0]
    except UnicodeDecodeError:
        raise _bad("The path is not UTF-8") from None
    at = text.find("/pushrules")
    return parse_rule_path(text[at + len("/pushrules"):] if at >= 0 else "")


@endpoint()
async def get_rules(request: Request, hs: Any, req: Requester) -> Any:
    p = _path(request)
    if p.scope is None:
        if not p.trailing_slash:
            raise MatrixError(404, "M_UNRECOGNIZED", "Use /pushrules/ with a trailing slash")
        return {"global": await hs.push.ruleset(req.user_id)}
    if p.kind is None:
        if not p.trailing_slash:
            raise _bad("Use /pushrules/global/ with a trailing slash")
        return await hs.push.ruleset(req.user_id)
    if p.rule_id is None:
        if not p.trailing_slash:
            raise _bad(f"Use /pushrules/global/{p.kind}/ with a trailing slash")
        return (await hs.push.ruleset(req.user_id))[p.kind]  # a bare list, as clients expect
    rule = await hs.push.get_rule(req.user_id, p.kind, p.rule_id)
    if p.attr is None:
        return rule
    return {p.attr: rule.get(p.attr, True if p.attr == "enabled" else [])}


def _rule_target(request: Request) -> RulePath:
    p = _path(request)
    if p.scope is None:
        raise _bad("Missing scope")
    if p.kind is None:
        raise _bad("Missing rule kind")
    if p.rule_id is None:
        raise _bad("Missing rule ID")
    return p


@endpoint()
async def put_rule(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    p = _rule_target(request)
    assert p.kind is not None and p.rule_id is not None
    body = await json_body(request)
    if p.attr is not None:
        if p.attr not in body:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{p.attr}'")
        await hs.push.set_attr(req.user_id, p.kind, p.rule_id, p.attr, body[p.attr])
        return {}
    q = request.query_params
    await hs.push.put_rule(req.user_id, p.kind, p.rule_id, body, q.get("before"), q.get("after"))
    return {}


@endpoint()
async def delete_rule(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    p = _rule_target(request)
    assert p.kind is not None and p.rule_id is not None
    if p.attr is not None:
        raise MatrixError(405, "M_UNRECOGNIZED", "Rule attributes cannot be deleted")
    await hs.push.delete_rule(req.user_id, p.kind, p.rule_id)
    return {}


routes = [
    Route(PREFIX, get_rules, methods=["GET"]),
    Route(f"{PREFIX}/{{rest:path}}", get_rules, methods=["GET"]),
    Route(f"{PREFIX}/{{rest:path}}", put_rule, methods=["PUT"]),
    Route(f"{PREFIX}/{{rest:path}}", delete_rule, methods=["DELETE"]),
]
