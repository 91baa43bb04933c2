"""Inbound event endpoints: transactions, joins, and the reads other servers use to fill gaps
(`/event`, `/state_ids`, `/state`, `/event_auth`, `/get_missing_events`, `/backfill`)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import query_int
from federation.routes.edge import federation_endpoint, json_object
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError

FED = "/_matrix/federation/v1"
FED2 = "/_matrix/federation/v2"


def _now() -> int:
    return int(time.time() * 1000)


def _event_id_param(request: Request) -> str:
    event_id = request.query_params.get("event_id")
    if not event_id:
        raise MatrixError(400, "M_MISSING_PARAM", "'event_id' is required")
    return event_id


@federation_endpoint()
async def send_transaction(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    body = json_object(content)
    if body.get("origin", origin) != origin:
        raise MatrixError(400, "M_FORBIDDEN", "The transaction's origin is not the signing server")
    return await hs.transactions.handle(origin, request.path_params["txn_id"], body)


@federation_endpoint()
async def get_event(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    ev = await hs.server_reads.event(origin, request.path_params["event_id"])
    return {"origin": hs.server_name, "origin_server_ts": _now(), "pdus": [hs.server_reads.as_pdu(ev)]}


@federation_endpoint()
async def state_ids(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    ids, chain = await hs.server_reads.state_ids(origin, request.path_params["room_id"], _event_id_param(request))
    return {"pdu_ids": ids, "auth_chain_ids": chain}


@federation_endpoint()
async def state(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    ids, chain = await hs.server_reads.state_ids(origin, request.path_params["room_id"], _event_id_param(request))
    return {"pdus": await hs.server_reads.pdus(ids), "auth_chain": await hs.server_reads.pdus(chain)}


@federation_endpoint()
async def event_auth(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    chain = await hs.server_reads.event_auth(origin, p["room_id"], p["event_id"])
    return {"auth_chain": await hs.server_reads.pdus(chain)}


def _id_list(body: dict[str, Any], key: str) -> list[str]:
    v = body.get(key, [])
    if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be a list of event IDs")
    return v


@federation_endpoint()
async def get_missing_events(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    body = json_object(content)
    limit = body.get("limit", 10)
    min_depth = body.get("min_depth", 0)
    if not isinstance(limit, int) or not isinstance(min_depth, int):
        raise MatrixError(400, "M_BAD_JSON", "'limit' and 'min_depth' must be integers")
    evs = await hs.server_reads.missing_events(
        origin, request.path_params["room_id"], _id_list(body, "earliest_events"),
        _id_list(body, "latest_events"), max(0, min(limit, 100)), min_depth)
    return {"events": [hs.server_reads.as_pdu(e) for e in evs]}


@federation_endpoint()
async def backfill(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    from_ids = request.query_params.getlist("v")
    if not from_ids:
        raise MatrixError(400, "M_MISSING_PARAM", "'v' (event IDs to go back from) is required")
    limit = max(0, min(query_int(request, "limit", 10) or 0, 100))
    evs = await hs.server_reads.backfill(origin, request.path_params["room_id"], from_ids, limit)
    return {"origin": hs.server_name, "origin_server_ts": _now(),
            "pdus": [hs.server_reads.as_pdu(e) for e in evs]}


@federation_endpoint()
async def make_join(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    return await hs.remote_joins.make_join(origin, p["room_id"], p["user_id"], request.query_params.getlist("ver"))


@federation_endpoint()
async def send_join_v2(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    return await hs.remote_joins.send_join(origin, p["room_id"], p["event_id"], content)


@federation_endpoint()
async def send_join_v1(request: Request, hs: Homeserver, origin: str, content: Any) -> list[Any]:
    """The v1 form: the same answer wrapped as `[200, {...}]` (deprecated, still used)."""
    p = request.path_params
    return [200, await hs.remote_joins.send_join(origin, p["room_id"], p["event_id"], content)]


routes = [
    Route(f"{FED}/send/{{txn_id}}", send_transaction, methods=["PUT"]),
    Route(f"{FED}/event/{{event_id}}", get_event, methods=["GET"]),
    Route(f"{FED}/state_ids/{{room_id}}", state_ids, methods=["GET"]),
    Route(f"{FED}/state/{{room_id}}", state, methods=["GET"]),
    Route(f"{FED}/event_auth/{{room_id}}/{{event_id}}", event_auth, methods=["GET"]),
    Route(f"{FED}/get_missing_events/{{room_id}}", get_missing_events, methods=["POST"]),
    Route(f"{FED}/backfill/{{room_id}}", backfill, methods=["GET"]),
    Route(f"{FED}/make_join/{{room_id}}/{{user_id}}", make_join, methods=["GET"]),
    Route(f"{FED2}/send_join/{{room_id}}/{{event_id}}", send_join_v2, methods=["PUT"]),
    Route(f"{FED}/send_join/{{room_id}}/{{event_id}}", send_join_v1, methods=["PUT"]),
]
