"""Fetching another server's media: authenticated federation media first
(`GET /_matrix/federation/v1/media/download/{mediaId}`, a multipart/mixed answer whose second
part is the bytes or a `Location` to fetch them from), then the peer's legacy
`/_matrix/media/v3/download/{serverName}/{mediaId}` for servers that predate Matrix 1.11.

The bytes are handed on as they arrive; the caller counts them and stops at its size limit.
Every connection (the redirect target too) goes through the federation client's address policy.
"""

from __future__ import annotations

import email.message
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from federation.client import FederationClient, RemoteError
from homeserver.protocol.errors import MatrixError

#: Most bytes of multipart framing (preamble, the JSON part, part headers) read before the media.
MAX_FRAMING = 64 * 1024
#: Answers of the federation media endpoint that mean "not supported here": try the legacy one.
FALLBACK_STATUSES = (400, 401, 403, 404, 405, 501)


@dataclass
class RemoteMedia:
    content_type: str | None
    filename: str | None
    chunks: AsyncIterator[bytes]


def boundary_of(content_type: str) -> str | None:
    msg = email.message.Message()
    msg["content-type"] = content_type
    got = msg.get_param("boundary")
    return got if isinstance(got, str) and 0 < len(got) <= 200 else None


def filename_of(disposition: str | None) -> str | None:
    """The file name of a Content-Disposition header (RFC 6266, `filename*` preferred)."""
    if not disposition:
        return None
    msg = email.message.Message()
    msg["content-disposition"] = disposition
    name = msg.get_filename()
    return name if name and len(name) <= 255 and not any(c in name for c in "\x00/\\\r\n") else None


def _parse_headers(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        if ":" in line:
            k, _, v = line.partition(":")
            out[k.strip().lower()] = v.strip()
    return out


class MultipartMedia:
    """Reads a two-part multipart/mixed media answer incrementally: the framing is buffered
    (bounded), the media part is streamed, ending at the closing delimiter."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: str) -> None:
        self._chunks = chunks
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        self._buf = b"\r\n"  # so that a first delimiter at the very start is found like the others

    async def _fill(self) -> bool:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            return False
        self._buf += chunk
        return True

    async def _until(self, marker: bytes) -> bytes:
        """The buffered bytes before `marker` (consumed with it), within the framing budget."""
        while marker not in self._buf:
            if len(self._buf) > MAX_FRAMING or not await self._fill():
                raise RemoteError("", 502, None, "Malformed multipart media answer")
        before, _, self._buf = self._buf.partition(marker)
        return before

    async def media_headers(self) -> dict[str, str]:
        await self._until(self._delim)  # preamble
        await self._until(b"\r\n")
        await self._until(b"\r\n\r\n")  # headers of the JSON part
        await self._until(self._delim)  # its body (metadata, currently always {})
        await self._until(b"\r\n")
        if self._buf.startswith(b"\r\n"):  # a part without headers
            self._buf = self._buf[2:]
            return {}
        return _parse_headers(await self._until(b"\r\n\r\n"))

    async def body(self) -> AsyncIterator[bytes]:
        keep = len(self._delim)
        while True:
            at = self._buf.find(self._delim)
            if at >= 0:
                if at:
                    yield self._buf[:at]
                return
            if len(self._buf) > keep:
                out, self._buf = self._buf[:-keep], self._buf[-keep:]
                yield out
            if not await self._fill():
                raise RemoteError("", 502, None, "Multipart media answer ended early")


async def _guarded(origin: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The bytes of an answer, a connection lost midway turned into a Matrix error."""
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.HTTPError as e:
        raise RemoteError(origin, 0, None, f"Lost {origin} while reading the media: {type(e).__name__}") from None


class RemoteMediaFetcher:
    def __init__(self, client: FederationClient) -> None:
        self.client = client

    @asynccontextmanager
    async def download(self, origin: str, media_id: str, timeout_s: float) -> AsyncIterator[RemoteMedia]:
        """The media, with its declared type and file name; 404 when the origin has none."""
        async with AsyncExitStack() as stack:
            uri = f"/_matrix/federation/v1/media/download/{quote(media_id, safe='')}?timeout_ms=" \
                  f"{int(timeout_s * 1000)}"
            resp = await stack.enter_async_context(self.client.stream(origin, uri, timeout_s=timeout_s))
            ctype = resp.headers.get("content-type", "")
            if resp.status_code == 200 and ctype.lower().startswith("multipart/"):
                boundary = boundary_of(ctype)
                if not boundary:
                    raise RemoteError(origin, 502, None, "Multipart media answer without a boundary")
                parts = MultipartMedia(_guarded(origin, resp.aiter_bytes()), boundary)
                headers = await parts.media_headers()
                if "location" in headers:
                    redirected = await stack.enter_async_context(
                        self.client.stream_url(headers["location"], timeout_s))
                    yield _plain(origin, redirected)
                else:
                    yield RemoteMedia(headers.get("content-type"), filename_of(headers.get("content-disposition")),
                                      parts.body())
                return
            if resp.status_code not in FALLBACK_STATUSES and resp.status_code != 200:
                raise _error(origin, resp)
            await resp.aclose()
            legacy = f"/_matrix/media/v3/download/{quote(origin, safe='')}/{quote(media_id, safe='')}" \
                     f"?allow_remote=false&allow_redirect=true&timeout_ms={int(timeout_s * 1000)}"
            resp = await stack.enter_async_context(self.client.stream(origin, legacy, signed=False,
                                                                      timeout_s=timeout_s))
            if resp.status_code in (301, 302, 307, 308) and "location" in resp.headers:
                resp = await stack.enter_async_context(self.client.stream_url(resp.headers["location"], timeout_s))
            yield _plain(origin, resp)


def _plain(origin: str, resp: httpx.Response) -> RemoteMedia:
    if resp.status_code != 200:
        raise _error(origin, resp)
    return RemoteMedia(resp.headers.get("content-type"), filename_of(resp.headers.get("content-disposition")),
                       _guarded(origin, resp.aiter_bytes()))


def _error(origin: str, resp: httpx.Response) -> MatrixError:
    if resp.status_code == 404:
        return MatrixError(404, "M_NOT_FOUND", "The remote server has no such media")
    if resp.status_code == 504:
        return MatrixError(504, "M_NOT_YET_UPLOADED", "The remote media has not been uploaded yet")
    if resp.status_code == 502:
        return MatrixError(502, "M_TOO_LARGE", "The remote server would not serve this media")
    return RemoteError(origin, resp.status_code, None, f"{origin} answered {resp.status_code} for the media")
