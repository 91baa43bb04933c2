"""AI endpoints under /_matrix/client/unstable/org.parley.ai (spec/ai.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from client_api.http import CORS_HEADERS, endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.ai.service import PreparedChat
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_event_id, is_valid_room_id

PREFIX = "/_matrix/client/unstable/org.parley.ai"


def _room(request: Request) -> str:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return room_id


def _event_id(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not is_valid_event_id(v):
        raise MatrixError(400, "M_INVALID_PARAM", f"'{key}' must be an event ID")
    return v


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def wants_stream(request: Request, body: dict[str, Any]) -> bool:
    if "stream" in body and not isinstance(body["stream"], bool):
        raise MatrixError(400, "M_INVALID_PARAM", "'stream' must be a boolean")
    return bool(body.get("stream")) or "text/event-stream" in request.headers.get("accept", "")


@endpoint()
async def get_settings(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.ai.settings.get(req.user_id)


@endpoint()
async def put_settings(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.ai.settings.put(req.user_id, await json_body(request))
    return {}


@endpoint()
async def delete_settings(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.ai.settings.delete(req.user_id)
    return {}


@endpoint()
async def models(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"models": await hs.ai.models(req.user_id)}


@endpoint()
async def summarize(request: Request, hs: Homeserver, req: Requester) -> Any:
    room_id = _room(request)
    body = await json_body(request, allow_empty=True)
    since_ts = _since_ts(body)
    since = body.get("since")
    if since not in (None, "read_marker"):
        raise MatrixError(400, "M_INVALID_PARAM", "'since' may only be \"read_marker\"")
    thread_id = _event_id(body, "thread_id") if "thread_id" in body else None
    if body.get("background") is True:
        params = {k: body[k] for k in ("since_ts", "since", "thread_id") if body.get(k) is not None}
        return {"job_id": await hs.ai.submit_summary(req.user_id, room_id, params)}
    stream = wants_stream(request, body)
    chat = await hs.ai.prepare_summary(req.user_id, room_id, since_ts=since_ts,
                                       since_read_marker=since == "read_marker", thread_id=thread_id)
    return await _answer(hs, chat, stream, "summary")


def _since_ts(body: dict[str, Any]) -> int | None:
    since_ts = body.get("since_ts")
    if since_ts is not None and (not isinstance(since_ts, int) or isinstance(since_ts, bool) or since_ts < 0):
        raise MatrixError(400, "M_INVALID_PARAM", "'since_ts' must be a timestamp in milliseconds")
    return since_ts


@endpoint()
async def ask(request: Request, hs: Homeserver, req: Requester) -> Any:
    room_id = _room(request)
    body = await json_body(request)
    question = body.get("question")
    if not isinstance(question, str):
        raise MatrixError(400, "M_INVALID_PARAM", "'question' must be a string")
    since_ts = _since_ts(body)
    if body.get("background") is True:
        return {"job_id": await hs.ai.submit_ask(req.user_id, room_id, question, since_ts)}
    stream = wants_stream(request, body)
    chat = await hs.ai.prepare_ask(req.user_id, room_id, question, since_ts=since_ts)
    return await _answer(hs, chat, stream, "answer")


async def _answer(hs: Homeserver, chat: PreparedChat, stream: bool, key: str) -> Any:
    """The model's answer as JSON (`{key, message_count, model}`) or as Server-Sent Events."""
    first, rest = await hs.ai.first_and_rest(chat)
    if not stream:
        text = first + "".join([p async for p in rest])
        return {key: text, "message_count": chat.message_count, "model": chat.model}

    async def frames() -> AsyncIterator[bytes]:
        parts = [first]
        try:
            yield sse("ai.start", {"model": chat.model, "message_count": chat.message_count})
            if first:
                yield sse("ai.token", {"text": first})
            try:
                async for piece in rest:
                    parts.append(piece)
                    yield sse("ai.token", {"text": piece})
            except MatrixError as e:
                yield sse("ai.error", e.to_dict())
                return
            yield sse("ai.done", {"text": "".join(parts)})
        finally:
            await rest.aclose()  # the client went away: stop the upstream generation

    headers = {**CORS_HEADERS, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


@endpoint()
async def suggest_replies(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = _room(request)
    body = await json_body(request)
    return {"suggestions": await hs.ai.suggest_replies(req.user_id, room_id, _event_id(body, "event_id"))}


@endpoint()
async def refresh_topics(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"job_id": await hs.ai.submit_topics(req.user_id, _room(request))}


@endpoint()
async def get_topics(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.ai.topics(req.user_id, _room(request))


@endpoint()
async def get_job(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.ai.jobs.get(request.path_params["job_id"], req.user_id)


@endpoint()
async def cancel_job(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.ai.jobs.cancel(request.path_params["job_id"], req.user_id)


@endpoint()
async def search(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    term = body.get("search_term")
    if not isinstance(term, str) or not term.strip() or len(term) > 1000:
        raise MatrixError(400, "M_INVALID_PARAM", "'search_term' must be a non-empty string")
    rooms = body.get("rooms")
    if rooms is not None and (not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms)):
        raise MatrixError(400, "M_INVALID_PARAM", "'rooms' must be a list of room IDs")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
        raise MatrixError(400, "M_INVALID_PARAM", "'limit' must be an integer from 1 to 50")
    return {"results": await hs.ai.search(req.user_id, term, rooms, limit)}


routes = [
    Route(f"{PREFIX}/settings", get_settings, methods=["GET"]),
    Route(f"{PREFIX}/settings", put_settings, methods=["PUT"]),
    Route(f"{PREFIX}/settings", delete_settings, methods=["DELETE"]),
    Route(f"{PREFIX}/models", models, methods=["GET"]),
    Route(f"{PREFIX}/rooms/{{room_id}}/summarize", summarize, methods=["POST"]),
    Route(f"{PREFIX}/rooms/{{room_id}}/ask", ask, methods=["POST"]),
    Route(f"{PREFIX}/rooms/{{room_id}}/suggest_replies", suggest_replies, methods=["POST"]),
    Route(f"{PREFIX}/rooms/{{room_id}}/topics", refresh_topics, methods=["POST"]),
    Route(f"{PREFIX}/rooms/{{room_id}}/topics", get_topics, methods=["GET"]),
    Route(f"{PREFIX}/search", search, methods=["POST"]),
    Route(f"{PREFIX}/jobs/{{job_id}}", get_job, methods=["GET"]),
    Route(f"{PREFIX}/jobs/{{job_id}}", cancel_job, methods=["DELETE"]),
]
