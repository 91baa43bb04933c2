"""Room endpoints: create, membership, send, state, reads, history, relations, threads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from client_api.http import endpoint, json_body, query_bool, query_int
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import RoomEventFilter
from homeserver.protocol.ids import is_valid_event_id, is_valid_room_id
from homeserver.rooms.reads import parse_limit, parse_page_token, parse_token

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
MAX_TYPE_BYTES = 255
MAX_TXN_ID = 255


def _room_id(request: Request) -> str:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return room_id


def _event_id(request: Request) -> str:
    event_id = request.path_params["event_id"]
    if not is_valid_event_id(event_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid event ID")
    return event_id


def _event_type(value: str) -> str:
    if not value or len(value.encode()) > MAX_TYPE_BYTES:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid event type")
    return value


def _txn_id(request: Request) -> str:
    txn = request.path_params["txn_id"]
    if not txn or len(txn) > MAX_TXN_ID:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid transaction ID")
    return txn


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 4096):
        raise MatrixError(400, "M_BAD_JSON", "'reason' must be a string")
    return reason


def _room_filter(request: Request) -> RoomEventFilter:
    raw = request.query_params.get("filter")
    if raw is None:
        return RoomEventFilter()
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError(400, "M_INVALID_PARAM", "filter must be JSON") from None
    try:
        return RoomEventFilter.parse(obj)
    except MatrixError as e:
        raise MatrixError(400, "M_INVALID_PARAM", e.error) from None


# ---------------------------------------------------------------------- create and membership


@endpoint()
async def create_room(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    room_id = await hs.rooms.create_room(req.user_id, body)
    return {"room_id": room_id}


@endpoint()
async def joined_rooms(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"joined_rooms": await hs.membership.joined_rooms(req.user_id)}


# Request keys that steer the join rather than go into the member event.
JOIN_CONTROL_KEYS = ("membership", "reason", "third_party_signed", "join_authorised_via_users_server")


def _join_content(body: dict[str, Any]) -> dict[str, Any]:
    """Extra keys of a join request become content of the member event (as Synapse does)."""
    return {k: v for k, v in body.items() if k not in JOIN_CONTROL_KEYS}


@endpoint()
async def join_by_id_or_alias(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request, allow_empty=True)
    via = request.query_params.getlist("via") + request.query_params.getlist("server_name")
    room_id = await hs.remote_membership.join_room(req.user_id, request.path_params["room"], via,
                                                   _reason(body), _join_content(body))
    return {"room_id": room_id}


@endpoint()
async def join_room(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request, allow_empty=True)
    room_id = _room_id(request)
    await hs.remote_membership.join_room(req.user_id, room_id, request.query_params.getlist("via"),
                                         _reason(body), _join_content(body))
    return {"room_id": room_id}


def _target(body: dict[str, Any]) -> str:
    target = body.get("user_id")
    if not isinstance(target, str):
        raise MatrixError(400, "M_BAD_JSON", "'user_id' must be a string")
    return target


@endpoint()
async def invite(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    if "medium" in body or "address" in body:
        raise MatrixError(400, "M_UNRECOGNIZED", "Third-party invites are not supported")
    target = _target(body)
    room_id = _room_id(request)
    await hs.membership.invite(req.user_id, room_id, target, _reason(body), body.get("is_direct") is True)
    return {}


@endpoint()
async def leave(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request, allow_empty=True)
    await hs.membership.leave(req.user_id, _room_id(request), _reason(body))
    return {}


@endpoint()
async def forget(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await json_body(request, allow_empty=True)
    await hs.rooms.forget(req.user_id, _room_id(request))
    return {}


def _moderation(action: str) -> Callable[[Request], Awaitable[Response]]:
    @endpoint()
    async def handler(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
        body = await json_body(request)
        target = _target(body)
        await hs.membership.moderate(action, req.user_id, _room_id(request), target, _reason(body))
        return {}

    return handler


kick = _moderation("kick")
ban = _moderation("ban")
unban = _moderation("unban")


# ---------------------------------------------------------------------- sending


@endpoint()
async def send_event(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = _room_id(request)
    event_type = _event_type(request.path_params["event_type"])
    txn_id = _txn_id(request)
    await hs.ratelimiter.check("message", req.user_id, hs.config.rate_limits.messages_per_second,
                         hs.config.rate_limits.messages_burst)
    content = await json_body(request)
    ev = await hs.rooms.send_event(
        req.user_id, req.device_id, room_id, event_type, content, txn_id, request.url.path
    )
    return {"event_id": ev.event_id}


@endpoint()
async def redact(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = _room_id(request)
    event_id = _event_id(request)
    txn_id = _txn_id(request)
    body = await json_body(request, allow_empty=True)
    await hs.ratelimiter.check("message", req.user_id, hs.config.rate_limits.messages_per_second,
                         hs.config.rate_limits.messages_burst)
    ev = await hs.rooms.redact(
        req.user_id, req.device_id, room_id, event_id, _reason(body), txn_id, request.url.path
    )
    return {"event_id": ev.event_id}


@endpoint()
async def put_state(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = _room_id(request)
    event_type = _event_type(request.path_params["event_type"])
    state_key = request.path_params.get("state_key", "")
    if len(state_key.encode()) > 255:
        raise MatrixError(400, "M_INVALID_PARAM", "State key too long")
    content = await json_body(request)
    ev = await hs.rooms.set_state(req.user_id, room_id, event_type, state_key, content)
    return {"event_id": ev.event_id}


# ---------------------------------------------------------------------- reads


@endpoint()
async def get_state(request: Request, hs: Homeserver, req: Requester) -> Any:
    return await hs.reader.room_state(req.user_id, _room_id(request))


@endpoint()
async def get_state_event(request: Request, hs: Homeserver, req: Requester) -> Any:
    room_id = _room_id(request)
    ev = await hs.reader.state_event(
        req.user_id, room_id, request.path_params["event_type"], request.path_params.get("state_key", "")
    )
    if request.query_params.get("format") == "event":
        return (await hs.serializer.serialize([ev]))[0]
    ser = (await hs.serializer.serialize([ev]))[0]
    return ser.get("content", {})


@endpoint()
async def get_event(request: Request, hs: Homeserver, req: Requester) -> Any:
    ev = await hs.reader.event(req.user_id, _room_id(request), _event_id(request))
    return (await hs.serializer.serialize([ev], (req.user_id, req.device_id)))[0]


@endpoint()
async def members(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    q = request.query_params
    for name in ("membership", "not_membership"):
        v = q.get(name)
        if v is not None and v not in ("join", "invite", "leave", "ban", "knock"):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid {name}")
    at = parse_token(q["at"]) if "at" in q else None
    chunk = await hs.reader.members(req.user_id, _room_id(request), q.get("membership"),
                                    q.get("not_membership"), at)
    return {"chunk": chunk}


@endpoint()
async def joined_members(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.reader.joined_members(req.user_id, _room_id(request))


@endpoint()
async def messages(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    q = request.query_params
    room_id = _room_id(request)
    direction = q.get("dir")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", "dir must be 'b' or 'f'")
    from_pos = parse_page_token(q["from"]) if "from" in q else None
    to_pos = parse_page_token(q["to"]) if "to" in q else None
    flt = _room_filter(request)
    limit = parse_limit(q.get("limit"), flt.limit if flt.limit is not None else 10)
    evs, end, start = await hs.reader.paginate(
        req.user_id, room_id, from_pos, to_pos, direction == "b", limit, flt
    )
    out: dict[str, Any] = {
        "start": start,
        "chunk": await hs.serializer.serialize(evs, (req.user_id, req.device_id)),
    }
    if end is not None:
        out["end"] = end
    if flt.lazy_load_members and evs:
        state = await hs.reader.lazy_members_for(room_id, evs, None)
        out["state"] = await hs.serializer.serialize(state)
    return out


@endpoint()
async def context(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    limit = parse_limit(request.query_params.get("limit"), 10, 100)
    return await hs.reader.context(
        req.user_id, _room_id(request), _event_id(request), limit, _room_filter(request)
    )


@endpoint()
async def relations(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    q = request.query_params
    direction = q.get("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", "dir must be 'b' or 'f'")
    from_pos = parse_token(q["from"]) if "from" in q else None
    to_pos = parse_token(q["to"]) if "to" in q else None
    limit = parse_limit(q.get("limit"), 50, 1000)
    return await hs.reader.relations(
        req.user_id, _room_id(request), _event_id(request), request.path_params.get("rel_type"),
        request.path_params.get("event_type"), from_pos, to_pos, direction == "b", limit,
        query_bool(request, "recurse"),
    )


@endpoint()
async def threads(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    q = request.query_params
    include = q.get("include", "all")
    if include not in ("all", "participated"):
        raise MatrixError(400, "M_INVALID_PARAM", "include must be 'all' or 'participated'")
    from_pos = parse_token(q["from"]) if "from" in q else None
    limit = query_int(request, "limit", 50) or 50
    return await hs.reader.threads(req.user_id, _room_id(request), include, from_pos, min(limit, 1000))


R = f"{V3}/rooms/{{room_id}}"
routes = [
    Route(f"{V3}/createRoom", create_room, methods=["POST"]),
    Route(f"{V3}/joined_rooms", joined_rooms, methods=["GET"]),
    Route(f"{V3}/join/{{room}}", join_by_id_or_alias, methods=["POST"]),
    Route(f"{R}/join", join_room, methods=["POST"]),
    Route(f"{R}/invite", invite, methods=["POST"]),
    Route(f"{R}/leave", leave, methods=["POST"]),
    Route(f"{R}/forget", forget, methods=["POST"]),
    Route(f"{R}/kick", kick, methods=["POST"]),
    Route(f"{R}/ban", ban, methods=["POST"]),
    Route(f"{R}/unban", unban, methods=["POST"]),
    Route(f"{R}/send/{{event_type}}/{{txn_id}}", send_event, methods=["PUT"]),
    Route(f"{R}/redact/{{event_id}}/{{txn_id}}", redact, methods=["PUT"]),
    Route(f"{R}/state", get_state, methods=["GET"]),
    Route(f"{R}/state/{{event_type}}", get_state_event, methods=["GET"]),
    Route(f"{R}/state/{{event_type}}", put_state, methods=["PUT"]),
    Route(f"{R}/state/{{event_type}}/{{state_key:path}}", get_state_event, methods=["GET"]),
    Route(f"{R}/state/{{event_type}}/{{state_key:path}}", put_state, methods=["PUT"]),
    Route(f"{R}/event/{{event_id}}", get_event, methods=["GET"]),
    Route(f"{R}/members", members, methods=["GET"]),
    Route(f"{R}/joined_members", joined_members, methods=["GET"]),
    Route(f"{R}/messages", messages, methods=["GET"]),
    Route(f"{R}/context/{{event_id}}", context, methods=["GET"]),
    Route(f"{V1}/rooms/{{room_id}}/relations/{{event_id}}", relations, methods=["GET"]),
    Route(f"{V1}/rooms/{{room_id}}/relations/{{event_id}}/{{rel_type}}", relations, methods=["GET"]),
    Route(f"{V1}/rooms/{{room_id}}/relations/{{event_id}}/{{rel_type}}/{{event_type}}", relations,
          methods=["GET"]),
    Route(f"{V1}/rooms/{{room_id}}/threads", threads, methods=["GET"]),
]
