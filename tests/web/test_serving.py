"""Serving web/out at `/`: caching, the Content-Security-Policy, 404s and path traversal."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from client_api.app import build_app
from client_api.webclient import WebClient, accepts_gzip, inline_script_hashes
from homeserver import metrics
from homeserver.config import Config

BOOT = b"self.__next_f=self.__next_f||[];self.__next_f.push([0])"
PAGE = (b"<!DOCTYPE html><html><head><link rel=stylesheet href=\"/_next/static/chunks/a1.css\">"
        b"<script src=\"/_next/static/chunks/main-abc.js\" async></script></head><body>"
        b"<script>" + BOOT + b"</script><script id=\"x\">second()</script></body></html>")


def sha(b: bytes) -> str:
    return base64.b64encode(hashlib.sha256(b).digest()).decode()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "_next" / "static" / "chunks").mkdir(parents=True)
    (out / "index.html").write_bytes(PAGE)
    (out / "404.html").write_bytes(b"<!DOCTYPE html><p>Nothing here</p><script>nf()</script>")
    (out / "index.txt").write_text("0:rsc payload")
    (out / "_next" / "static" / "chunks" / "main-abc.js").write_text("console.log(1)")
    (out / "_next" / "static" / "chunks" / "a1.css").write_text("body{}")
    (out / "_next" / "static" / "media" / "crypto.0a1b.wasm").parent.mkdir()
    (out / "_next" / "static" / "media" / "crypto.0a1b.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "secret.txt").write_text("outside the web root")
    (out / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return out


@pytest.fixture
async def web(site: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Static paths never touch the homeserver, so no Homeserver is started here.
    app = build_app(Config(web_client_dir=str(site)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://parley.test") as c:
        yield c


async def test_index_is_html_with_no_cache_and_a_hashed_csp(web: httpx.AsyncClient) -> None:
    resp = await web.get("/")
    assert resp.status_code == 200
    assert resp.content == PAGE
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-content-type-options"] == "nosniff"
    csp = resp.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    scripts = directives["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    # Exactly the two inline scripts are allowed, by hash; the external one comes from 'self', and
    # WebAssembly (the end-to-end encryption) may be compiled, which allows no JavaScript eval.
    assert sorted(scripts) == sorted(["'self'", "'wasm-unsafe-eval'", f"'sha256-{sha(BOOT)}'",
                                      f"'sha256-{sha(b'second()')}'"])
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'" and directives["default-src"] == "'self'"


async def test_webassembly_is_served_as_such(web: httpx.AsyncClient) -> None:
    # WebAssembly.instantiateStreaming refuses a module served as anything but application/wasm.
    resp = await web.get("/_next/static/media/crypto.0a1b.wasm")
    assert resp.status_code == 200 and resp.content.startswith(b"\0asm")
    assert resp.headers["content-type"] == "application/wasm"
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_hashed_assets_are_gzipped_for_clients_that_accept_it(web: httpx.AsyncClient, site: Path) -> None:
    big = b"(function(){return 'parley'})();\n" * 4000
    (site / "_next" / "static" / "chunks" / "big-1.js").write_bytes(big)
    url = "/_next/static/chunks/big-1.js"
    resp = await web.get(url, headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert resp.status_code == 200 and resp.content == big  # httpx undoes the gzip
    assert resp.headers["content-encoding"] == "gzip" and resp.headers["vary"] == "Accept-Encoding"
    assert int(resp.headers["content-length"]) < len(big) // 20
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    # Each representation has its own validator; a revalidation of the gzipped one is a 304.
    again = await web.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304
    for refuses in ("identity", "gzip;q=0", "br"):
        plain = await web.get(url, headers={"Accept-Encoding": refuses})
        assert "content-encoding" not in plain.headers and plain.content == big, refuses
        assert plain.headers["etag"] != resp.headers["etag"] and plain.headers["vary"] == "Accept-Encoding"
    # A rebuilt asset is compressed again, not served from the old copy.
    (site / "_next" / "static" / "chunks" / "big-1.js").write_bytes(big + b"//v2\n")
    assert (await web.get(url, headers={"Accept-Encoding": "gzip"})).content == big + b"//v2\n"


def test_accept_encoding_parsing() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("deflate, gzip;q=1.0") and accepts_gzip("*")
    assert accepts_gzip("GZIP; q=0.5")
    assert not accepts_gzip("") and not accepts_gzip("br") and not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip;q=bad") and not accepts_gzip("x-gzip2")


async def test_csp_follows_a_rebuilt_page(web: httpx.AsyncClient, site: Path) -> None:
    first = (await web.get("/")).headers["content-security-policy"]
    (site / "index.html").write_bytes(b"<html><script>changed()</script><p>new build</p></html>")
    second = (await web.get("/")).headers["content-security-policy"]
    assert second != first and f"'sha256-{sha(b'changed()')}'" in second


async def test_hashed_assets_are_immutable(web: httpx.AsyncClient) -> None:
    resp = await web.get("/_next/static/chunks/main-abc.js")
    assert resp.status_code == 200 and resp.text == "console.log(1)"
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert resp.headers["content-type"].startswith("text/javascript")
    assert "content-security-policy" not in resp.headers
    css = await web.get("/_next/static/chunks/a1.css")
    assert css.headers["content-type"].startswith("text/css")
    rsc = await web.get("/index.txt")
    assert rsc.status_code == 200 and rsc.headers["cache-control"] == "no-cache"


async def test_etag_revalidation_and_head(web: httpx.AsyncClient) -> None:
    resp = await web.get("/")
    again = await web.get("/", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = await web.head("/_next/static/chunks/main-abc.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len("console.log(1)"))


async def test_missing_files_get_the_404_page(web: httpx.AsyncClient) -> None:
    for path in ("/no/such/page", "/_next/static/chunks/gone.js", "/index.html/x"):
        resp = await web.get(path)
        assert resp.status_code == 404, path
        assert b"Nothing here" in resp.content
        assert resp.headers["cache-control"] == "no-cache"
        assert f"'sha256-{sha(b'nf()')}'" in resp.headers["content-security-policy"]


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/_next/../../secret.txt", "/_next/%2E%2E/%2E%2E/secret.txt",
    "/..%2fsecret.txt", "/escape.txt", "/%00index.html", "/..\\secret.txt",
])
async def test_paths_outside_the_root_are_refused(web: httpx.AsyncClient, path: str) -> None:
    resp = await web.get(path)
    assert resp.status_code == 404
    assert b"outside the web root" not in resp.content


async def test_api_paths_keep_matrix_errors(web: httpx.AsyncClient) -> None:
    resp = await web.get("/_matrix/client/v3/no/such/endpoint")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"
    resp = await web.get("/.well-known/matrix/nothing")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"
    # Writes to a web path are not the web client's business.
    resp = await web.post("/", content=b"{}")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"


async def test_unbuilt_client_says_how_to_build_it(tmp_path: Path) -> None:
    app = build_app(Config(web_client_dir=str(tmp_path / "missing")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://parley.test") as c:
        resp = await c.get("/")
    assert resp.status_code == 404
    assert re.search(r"not built.*make run", resp.text)


def test_inline_script_hashes_skip_external_scripts() -> None:
    html = b'<script src="/a.js"></script><SCRIPT type="module">m()</SCRIPT><script async src=x></script>'
    assert inline_script_hashes(html) == [sha(b"m()")]


def test_resolve_refuses_escapes_that_clients_would_normalize(site: Path) -> None:
    # httpx and browsers collapse `..` before sending; a raw request line can still carry it.
    web = WebClient(site)
    assert web.resolve("/") == (site / "index.html").resolve()
    assert web.resolve("/index") == (site / "index.html").resolve()
    for raw in ("/../secret.txt", "/_next/../../secret.txt", "/./index.html", "/escape.txt", "/a\x00b"):
        assert web.resolve(raw) is None, raw


async def test_web_requests_have_their_own_metrics_label(web: httpx.AsyncClient) -> None:
    series = metrics.HTTP_REQUESTS.labels("GET", "web", "200")
    before = series._value.get()
    assert (await web.get("/")).status_code == 200
    assert series._value.get() == before + 1
