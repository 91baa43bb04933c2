"""Media repository endpoints (authenticated media, spec v1.11+; upload/create stay under /_matrix/media)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from client_api.http import CORS_HEADERS, endpoint, query_bool, query_int
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.media.service import DEFAULT_WAIT_MS, base_type, check_media_id
from homeserver.protocol.errors import MatrixError

# The policy the spec recommends for media responses ("Content-Security-Policy" under Content repository).
MEDIA_CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
             "style-src 'unsafe-inline'; object-src 'self';")
# "Serving inline content" (spec v1.12): only these may be served `inline`; all else is an attachment.
INLINE_TYPES = {
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json", "image/jpeg",
    "image/gif", "image/png", "image/apng", "image/webp", "image/avif", "video/mp4", "video/webm",
    "video/ogg", "video/quicktime", "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg",
    "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
}
# Types a browser would run as a document even as an attachment opened later: served as bytes.
SCRIPTABLE_TYPES = {
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
    "text/javascript", "application/javascript", "application/ecmascript", "text/ecmascript",
}
_TOKEN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~ ()")


def content_disposition(disposition: str, filename: str | None) -> str:
    """RFC 6266: a plain quoted `filename` when it is safe ASCII, otherwise an ASCII fallback plus
    the exact name as RFC 5987 `filename*=utf-8''…`."""
    if not filename:
        return disposition
    if all(c in _TOKEN_CHARS for c in filename):
        return f'{disposition}; filename="{filename}"'
    fallback = "".join(c if c in _TOKEN_CHARS else "_" for c in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=utf-8''{quote(filename, safe='')}"


def _media_response(chunks: AsyncIterator[bytes], content_type: str | None, size: int | None,
                    filename: str | None) -> Response:
    ctype = (content_type or "").strip() or "application/octet-stream"
    btype = base_type(ctype)
    inline = btype in INLINE_TYPES
    if btype in SCRIPTABLE_TYPES or not btype or "/" not in btype:
        ctype = "application/octet-stream"
    headers = dict(CORS_HEADERS)
    headers.update({
        "Content-Disposition": content_disposition("inline" if inline else "attachment", filename),
        "Content-Security-Policy": MEDIA_CSP,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=86400, immutable",
    })
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=ctype, headers=headers)


def _upload_meta(request: Request, hs: Homeserver) -> tuple[str | None, str | None]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isascii() and declared.strip().isdigit() \
            and int(declared) > hs.media.max_upload:
        raise MatrixError(413, "M_TOO_LARGE", f"Uploads are limited to {hs.media.max_upload} bytes")
    ctype = request.headers.get("content-type")
    filename = request.query_params.get("filename")
    if filename is not None and (len(filename) > 255 or any(c in filename for c in "\x00/\\\r\n")):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid filename")
    if ctype is not None and (len(ctype) > 255 or not ctype.isprintable()):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid Content-Type")
    return ctype or None, filename or None


@endpoint()
async def upload(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    ctype, filename = _upload_meta(request, hs)
    uri = await hs.media.upload(req.user_id, request.stream(), ctype, filename)
    return {"content_uri": uri}


@endpoint()
async def upload_reserved(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    server, media_id = request.path_params["server_name"], check_media_id(request.path_params["media_id"])
    if server != hs.server_name:
        raise MatrixError(403, "M_FORBIDDEN", "Media IDs of other servers cannot be uploaded here")
    ctype, filename = _upload_meta(request, hs)
    await hs.media.upload_reserved(req.user_id, media_id, request.stream(), ctype, filename)
    return {}


@endpoint()
async def create(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.media.create(req.user_id)


@endpoint()
async def config(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"m.upload.size": hs.media.max_upload}


@endpoint()
async def download(request: Request, hs: Homeserver, req: Requester) -> Response:
    p = request.path_params
    timeout_ms = query_int(request, "timeout_ms", DEFAULT_WAIT_MS) or 0
    row = await hs.media.get(p["server_name"], p["media_id"], timeout_ms)
    filename = p.get("file_name") or row["filename"]
    chunks = await hs.media.open(row["media_id"])
    return _media_response(chunks, row["content_type"], row["size"], filename)


@endpoint()
async def thumbnail(request: Request, hs: Homeserver, req: Requester) -> Response:
    p = request.path_params
    width = query_int(request, "width")
    height = query_int(request, "height")
    if width is None or height is None:
        raise MatrixError(400, "M_MISSING_PARAM", "width and height are required")
    method = request.query_params.get("method", "scale")
    query_bool(request, "animated")  # validated; thumbnails are always static for now
    timeout_ms = query_int(request, "timeout_ms", DEFAULT_WAIT_MS) or 0
    key, meta = await hs.media.thumbnail(p["server_name"], p["media_id"], width, height, method, timeout_ms)
    chunks = await hs.media.open(key)
    ext = "png" if meta["content_type"] == "image/png" else "jpg"
    return _media_response(chunks, meta["content_type"], meta["size"], f"thumbnail.{ext}")


@endpoint()
async def preview_url(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    url = request.query_params.get("url")
    if not url:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'url'")
    query_int(request, "ts")  # validated; we always return the newest preview
    return await hs.media.preview_url(url, req.user_id)


@endpoint(auth=False)
async def frozen(request: Request, hs: Homeserver) -> dict[str, Any]:
    # Unauthenticated media is frozen (spec v1.11): only media from before the freeze would be
    # served here, and all of Parley's media postdates it.
    raise MatrixError(404, "M_NOT_FOUND", "Use the authenticated media endpoints (/_matrix/client/v1/media)")


V1 = "/_matrix/client/v1/media"
MV3 = "/_matrix/media/v3"
routes = [
    Route(f"{MV3}/upload", upload, methods=["POST"]),
    Route(f"{MV3}/upload/{{server_name}}/{{media_id}}", upload_reserved, methods=["PUT"]),
    Route("/_matrix/media/v1/create", create, methods=["POST"]),
    Route(f"{V1}/config", config, methods=["GET"]),
    Route(f"{V1}/download/{{server_name}}/{{media_id}}", download, methods=["GET"]),
    Route(f"{V1}/download/{{server_name}}/{{media_id}}/{{file_name}}", download, methods=["GET"]),
    Route(f"{V1}/thumbnail/{{server_name}}/{{media_id}}", thumbnail, methods=["GET"]),
    Route(f"{V1}/preview_url", preview_url, methods=["GET"]),
    Route(f"{MV3}/download/{{server_name}}/{{media_id}}", frozen, methods=["GET"]),
    Route(f"{MV3}/download/{{server_name}}/{{media_id}}/{{file_name}}", frozen, methods=["GET"]),
    Route(f"{MV3}/thumbnail/{{server_name}}/{{media_id}}", frozen, methods=["GET"]),
    Route(f"{MV3}/config", config, methods=["GET"]),
    Route(f"{MV3}/preview_url", preview_url, methods=["GET"]),
]
