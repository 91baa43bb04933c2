"""The web client at `/`: the static export of `web/` (web/out), served by the homeserver itself.

- Paths under the Matrix and discovery prefixes never reach this module; everything else that is
  a GET or HEAD does.
- Next.js puts content-hashed assets under `/_next/static/`: they are cached for a year and marked
  immutable. HTML and the RSC payloads (`.txt`) are `no-cache`, revalidated through an ETag.
- HTML carries a strict Content-Security-Policy. Next's static export inlines small bootstrap
  scripts, so instead of `'unsafe-inline'` each page's inline scripts are hashed when the file is
  first served (and again whenever it changes) and only those hashes are allowed. The one
  relaxation is `'wasm-unsafe-eval'`: it lets the end-to-end encryption's WebAssembly (served
  from this origin) be compiled, and allows no JavaScript `eval`. `connect-src` also admits
  loopback origins, for the person's own AI server (spec/ai.md, "Encrypted rooms").
- Hashed assets that compress well (scripts, styles, and above all the end-to-end encryption's
  WebAssembly: 7.6 MB, 2.1 MB gzipped) are sent gzipped to clients that accept it. Each is
  compressed once, off the event loop, and kept in memory while its file is unchanged.
- A path that escapes the export's directory (`..`, symlinks pointing out) is refused with 404,
  like any missing file.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Paths that belong to the homeserver's APIs: a miss there is a Matrix 404, not a web page.
API_PREFIXES = ("/_matrix/", "/_synapse/", "/.well-known/", "/_parley/")
IMMUTABLE_PREFIX = "/_next/static/"
IMMUTABLE = "public, max-age=31536000, immutable"

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.S | re.I)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming refuses any other type
    ".webmanifest": "application/manifest+json",
}
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_COMPRESSIBLE = {".js", ".css", ".wasm", ".json", ".svg", ".txt", ".map"}
_GZIP_MIN_SIZE = 1024  # smaller files gain nothing worth a Content-Encoding
_GZIP_CACHE_LIMIT = 64 * 1024 * 1024  # bytes of compressed assets kept; an export holds far less
NOT_BUILT = (b"Parley's web client is not built. Run `make run` (or `npm ci && npm run build` in web/) "
             b"to build it; the Matrix API is unaffected.\n")


def default_root() -> Path:
    """web/out next to the source tree (a checkout or an editable install)."""
    return Path(__file__).resolve().parents[1] / "web" / "out"


def content_security_policy(script_hashes: list[str]) -> str:
    scripts = " ".join(["'self'", "'wasm-unsafe-eval'", *(f"'sha256-{h}'" for h in script_hashes)])
    return "; ".join((
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        # Loopback too: in an encrypted room the page calls the person's own inference server on
        # their machine (Ollama, LM Studio) with text only the browser can read (spec/ai.md).
        "connect-src 'self' http://localhost:* http://127.0.0.1:*",
        "media-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (RFC 9110 section 12.5.3: a q of 0 refuses)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def inline_script_hashes(html: bytes) -> list[str]:
    """sha256 of every inline script, base64, as CSP source expressions want them."""
    return [base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() for m in _INLINE_SCRIPT.finditer(html)]


@dataclass(frozen=True)
class _Page:
    stamp: tuple[int, int]
    csp: str


class WebClient:
    """An ASGI app serving one static export directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._csp: dict[Path, _Page] = {}
        self._gzipped: dict[Path, tuple[tuple[int, int], bytes]] = {}

    @staticmethod
    def handles(scope: Scope) -> bool:
        path: str = scope["path"]
        return scope["method"] in ("GET", "HEAD") and not path.startswith(API_PREFIXES)

    def resolve(self, url_path: str) -> Path | None:
        """The file a URL path names inside the root, or None (missing, or outside the root)."""
        if "\x00" in url_path or "\\" in url_path:
            return None
        parts = [p for p in url_path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            return None
        try:
            root = self.root.resolve(strict=True)
        except OSError:
            return None
        base = root.joinpath(*parts)
        candidates = [base / "index.html"] if url_path.endswith("/") or not parts else [base, base.with_name(
            base.name + ".html"), base / "index.html"]
        for c in candidates:
            try:
                real = c.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if real.is_file() and real.is_relative_to(root):
                return real
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._respond(scope)
        await response(scope, receive, send)

    async def _respond(self, scope: Scope) -> Response:
        if not self.root.is_dir():
            return Response(NOT_BUILT, 404, {**BASE_HEADERS, "Cache-Control": "no-cache"}, "text/plain")
        path: str = scope["path"]
        file = self.resolve(path)
        status = 200
        if file is None:
            status = 404
            file = self.resolve("/404.html")
            if file is None:
                return Response(b"Not found\n", 404, {**BASE_HEADERS, "Cache-Control": "no-cache"}, "text/plain")
        st = await anyio.to_thread.run_sync(file.stat)
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        headers = dict(BASE_HEADERS)
        headers["Cache-Control"] = IMMUTABLE if path.startswith(IMMUTABLE_PREFIX) and status == 200 else "no-cache"
        headers["ETag"] = etag
        media_type = _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix == ".html":
            headers["Content-Security-Policy"] = await self._page_csp(file, (st.st_mtime_ns, st.st_size))
        request_headers = Headers(scope=scope)
        gzipped: bytes | None = None
        if (status == 200 and path.startswith(IMMUTABLE_PREFIX) and file.suffix in _COMPRESSIBLE
                and st.st_size >= _GZIP_MIN_SIZE):
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(request_headers.get("accept-encoding", "")):
                gzipped = await self._gzip(file, (st.st_mtime_ns, st.st_size))
                headers["Content-Encoding"] = "gzip"
                headers["ETag"] = etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}-gz"'
        if status == 200 and etag in request_headers.get("if-none-match", ""):
            return Response(b"", 304, headers)
        if scope["method"] == "HEAD":
            headers["Content-Length"] = str(st.st_size if gzipped is None else len(gzipped))
            return Response(b"", status, headers, media_type)
        body = gzipped if gzipped is not None else await anyio.to_thread.run_sync(file.read_bytes)
        return Response(body, status, headers, media_type)

    async def _gzip(self, file: Path, stamp: tuple[int, int]) -> bytes:
        cached = self._gzipped.get(file)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        data = await anyio.to_thread.run_sync(lambda: gzip.compress(file.read_bytes(), compresslevel=6, mtime=0))
        if sum(len(b) for _, b in self._gzipped.values()) + len(data) > _GZIP_CACHE_LIMIT:
            self._gzipped.clear()  # a rebuilt export left old assets behind; start over
        self._gzipped[file] = (stamp, data)
        return data

    async def _page_csp(self, file: Path, stamp: tuple[int, int]) -> str:
        page = self._csp.get(file)
        if page is None or page.stamp != stamp:
            html = await anyio.to_thread.run_sync(file.read_bytes)
            page = _Page(stamp, content_security_policy(inline_script_hashes(html)))
            self._csp[file] = page
        return page.csp
