"""Media repository endpoints (authenticated media, spec v1.11+)."""

from __future__ import annotations

from typing import Any, AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from client_api.http import CORS_HEADERS, endpoint, query_int
from homeserver.accounts.service import Requester
from homeserver.media.service import check_media_id
from homeserver.protocol.errors import MatrixError

MEDIA_CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
             "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")
# Types a browser may render inline without risk; everything else downloads as an attachment.
INLINE_TYPES = {
    "text/plain", "text/csv", "application/json", "application/ld+json", "image/jpeg", "image/gif",
    "image/png", "image/apng", "image/webp", "image/avif", "video/mp4", "video/webm", "video/ogg",
    "video/quicktime", "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg",
    "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
}


def _filename_param(filename: str) -> str:
    if filename.isascii() and all(c.isalnum() or c in " ._-()" for c in filename):
        return f'filename="{filename}"'
    return f"filename*=utf-8''{quote(filename, safe='')}"


def _media_response(chunks: AsyncIterator[bytes], content_type: str | None, size: int | None,
                    filename: str | None) -> Response:
    ctype = (content_type or "application/octet-stream").strip()
    base_type = ctype.split(";", 1)[0].strip().lower()
    disposition = "inline" if base_type in INLINE_TYPES else "attachment"
    if filename:
        disposition += "; " + _filename_param(filename)
    headers = dict(CORS_HEADERS)
    headers.update({
        "Content-Disposition": disposition,
        "Content-Security-Policy": MEDIA_CSP,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=86400, immutable",
    })
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=ctype if disposition.startswith("inline") else
                             (ctype if base_type != "text/html" else "application/octet-stream"), headers=headers)


def _upload_meta(request: Request) -> tuple[str | None, str | None]:
    ctype = request.headers.get("content-type")
    filename = request.query_params.get("filename")
    if filename is not None and (len(filename) > 255 or "\x00" in filename or "/" in filename):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid filename")
    if ctype is not None and (len(ctype) > 255 or "\x00" in ctype):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid Content-Type")
    return ctype, filename


def _check_length(request: Request, hs: Any) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > hs.media.max_upload:
        raise MatrixError(413, "M_TOO_LARGE", f"Uploads are limited to {hs.media.max_upload} bytes")


@endpoint()
async def upload(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    _check_length(request, hs)
    ctype, filename = _upload_meta(request)
    uri = await hs.media.upload(req.user_id, request.stream(), ctype, filename)
    return {"content_uri": uri}


@endpoint()
async def upload_reserved(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    server, media_id = request.path_params["server_name"], check_media_id(request.path_params["media_id"])
    if server != hs.server_name:
        raise MatrixError(403, "M_FORBIDDEN", "Media IDs of other servers cannot be uploaded here")
    _check_length(request, hs)
    ctype, filename = _upload_meta(request)
    await hs.media.upload(req.user_id, request.stream(), ctype, filename, media_id=media_id)
    return {}


@endpoint()
async def create(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    return await hs.media.create(req.user_id)


@endpoint()
async def config(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    return {"m.upload.size": hs.media.max_upload}


@endpoint()
async def download(request: Request, hs: Any, req: Requester) -> Response:
    p = request.path_params
    row = await hs.media.get(p["server_name"], p["media_id"])
    filename = p.get("file_name") or row["filename"]
    return _media_response(hs.media.stream(row["media_id"]), row["content_type"], row["size"], filename)


@endpoint()
async def thumbnail(request: Request, hs: Any, req: Requester) -> Response:
    p = request.path_params
    width = query_int(request, "width")
    height = query_int(request, "height")
    if width is None or height is None:
        raise MatrixError(400, "M_MISSING_PARAM", "width and height are required")
    method = request.query_params.get("method", "scale")
    key, meta = await hs.media.thumbnail(p["server_name"], p["media_id"], width, height, method)
    return _media_response(hs.media.stream(key), meta["content_type"], meta["size"], None)


@endpoint()
async def preview_url(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    url = request.query_params.get("url")
    if not url:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'url'")
    return await hs.url_previewer.preview(url)


@endpoint(auth=False)
async def frozen(request: Request, hs: Any) -> dict[str, Any]:
    # Unauthenticated media is frozen (spec v1.11): nothing uploaded here is served this way.
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
