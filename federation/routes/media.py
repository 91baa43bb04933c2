"""Authenticated federation media (Matrix 1.11): `GET /_matrix/federation/v1/media/download/{mediaId}`
and `/thumbnail/{mediaId}`. Only this server's own uploads are served (never media it cached
from elsewhere). The answer is multipart/mixed with exactly two parts: `application/json`
metadata (an empty object) and the bytes with their Content-Type and Content-Disposition."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from client_api.http import query_bool, query_int
from client_api.routes.media import INLINE_TYPES, SCRIPTABLE_TYPES, content_disposition
from federation.routes.edge import federation_endpoint
from homeserver.app import Homeserver
from homeserver.media.service import DEFAULT_WAIT_MS, base_type, check_media_id
from homeserver.protocol.errors import MatrixError

FED = "/_matrix/federation/v1/media"


def multipart_media(chunks: AsyncIterator[bytes], content_type: str | None, size: int | None,
                    filename: str | None) -> Response:
    ctype = (content_type or "").strip() or "application/octet-stream"
    btype = base_type(ctype)
    if btype in SCRIPTABLE_TYPES or "/" not in btype:
        ctype = "application/octet-stream"
    disposition = content_disposition("inline" if btype in INLINE_TYPES else "attachment", filename or None)
    boundary = secrets.token_hex(16)
    head = (f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
            f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Disposition: {disposition}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for chunk in chunks:
            yield chunk
        yield tail

    headers = {"Content-Length": str(len(head) + size + len(tail))} if size is not None else {}
    return StreamingResponse(body(), media_type=f"multipart/mixed; boundary={boundary}", headers=headers)


@federation_endpoint()
async def download(request: Request, hs: Homeserver, origin: str, content: Any) -> Response:
    media_id = check_media_id(request.path_params["media_id"])
    timeout_ms = query_int(request, "timeout_ms", DEFAULT_WAIT_MS) or 0
    row = await hs.media.get(hs.server_name, media_id, timeout_ms)
    chunks = await hs.media.open(row["media_id"])
    return multipart_media(chunks, row["content_type"], row["size"], row["filename"])


@federation_endpoint()
async def thumbnail(request: Request, hs: Homeserver, origin: str, content: Any) -> Response:
    media_id = check_media_id(request.path_params["media_id"])
    width, height = query_int(request, "width"), query_int(request, "height")
    if width is None or height is None:
        raise MatrixError(400, "M_MISSING_PARAM", "width and height are required")
    query_bool(request, "animated")  # validated; thumbnails are always static
    timeout_ms = query_int(request, "timeout_ms", DEFAULT_WAIT_MS) or 0
    key, meta = await hs.media.thumbnail(hs.server_name, media_id, width, height,
                                         request.query_params.get("method", "scale"), timeout_ms)
    chunks = await hs.media.open(key)
    ext = "png" if meta["content_type"] == "image/png" else "jpg"
    return multipart_media(chunks, meta["content_type"], meta["size"], f"thumbnail.{ext}")


routes = [
    Route(f"{FED}/download/{{media_id}}", download, methods=["GET"]),
    Route(f"{FED}/thumbnail/{{media_id}}", thumbnail, methods=["GET"]),
]
