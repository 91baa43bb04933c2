"""Media repository: local and S3 (a real S3-protocol server, moto), thumbnails, limits, previews."""

from __future__ import annotations

import http.server
import io
import os
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from PIL import Image

from tests.conftest import MatrixClient

V1 = "/_matrix/client/v1/media"
MV3 = "/_matrix/media/v3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                 region_name="us-east-1").create_bucket(Bucket="parley-test")
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def config_overrides(request: Any, s3_server: str) -> dict[str, Any]:
    if request.param == "s3":
        return {"media_backend": "s3", "s3_endpoint": s3_server, "s3_bucket": "parley-test",
                "s3_access_key": "k", "s3_secret_key": "s"}
    return {}


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _mxc_parts(uri: str) -> tuple[str, str]:
    assert uri.startswith("mxc://")
    server, media_id = uri[6:].split("/", 1)
    return server, media_id


async def test_upload_download_round_trip(client: MatrixClient, config_overrides: dict[str, Any]) -> None:
    alice = await client.register()
    data = os.urandom(3 * 1024 * 1024 + 17)
    resp = await alice.request("POST", f"{MV3}/upload", raw=data, params={"filename": "report final.bin"},
                               headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 200, resp.text
    server, media_id = _mxc_parts(resp.json()["content_uri"])
    got = await alice.request("GET", f"{V1}/download/{server}/{media_id}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-disposition"].startswith("attachment")
    assert "report%20final.bin" in got.headers["content-disposition"] or "report final.bin" in got.headers["content-disposition"]
    assert got.headers["cross-origin-resource-policy"] == "cross-origin"
    assert got.headers["content-security-policy"].startswith("sandbox")
    named = await alice.request("GET", f"{V1}/download/{server}/{media_id}/other.txt")
    assert "other.txt" in named.headers["content-disposition"]
    # the query-string token still works (matrix-nio builds such URLs), no token does not
    q = await client.request("GET", f"{V1}/download/{server}/{media_id}", params={"access_token": alice.token})
    assert q.status_code == 200 and q.content == data
    anon = await client.request("GET", f"{V1}/download/{server}/{media_id}")
    assert anon.status_code == 401 and anon.json()["errcode"] == "M_MISSING_TOKEN"
    # the old unauthenticated endpoints are frozen
    old = await client.request("GET", f"{MV3}/download/{server}/{media_id}")
    assert old.status_code == 404 and old.json()["errcode"] == "M_NOT_FOUND"
    img = await alice.request("POST", f"{MV3}/upload", raw=_png(4, 4), headers={"Content-Type": "image/png"})
    s2, m2 = _mxc_parts(img.json()["content_uri"])
    inline = await alice.request("GET", f"{V1}/download/{s2}/{m2}")
    assert inline.headers["content-disposition"].startswith("inline") and inline.headers["content-type"] == "image/png"
    html = await alice.request("POST", f"{MV3}/upload", raw=b"<script>alert(1)</script>", headers={"Content-Type": "text/html"})
    s3, m3 = _mxc_parts(html.json()["content_uri"])
    served = await alice.request("GET", f"{V1}/download/{s3}/{m3}")
    assert served.headers["content-disposition"].startswith("attachment")
    assert not served.headers["content-type"].startswith("text/html")


async def test_bad_ids_and_config(client: MatrixClient) -> None:
    alice = await client.register()
    cfg = await alice.ok("GET", f"{V1}/config")
    assert cfg["m.upload.size"] > 0
    for path in (f"{V1}/download/test.parley/..%2F..%2Fetc", f"{V1}/download/test.parley/a.b",
                 f"{V1}/download/test.parley/nope", f"{V1}/download/other.server/abc"):
        resp = await alice.get(path)
        assert resp.status_code in (400, 404), path
        assert resp.json()["errcode"] in ("M_INVALID_PARAM", "M_NOT_FOUND", "M_UNRECOGNIZED")


@pytest.mark.parametrize("config_overrides", [{"max_upload_bytes": 1000}])
async def test_size_limit_keeps_nothing(client: MatrixClient, config_overrides: dict[str, Any], tmp_path: Path) -> None:
    alice = await client.register()
    resp = await alice.request("POST", f"{MV3}/upload", raw=b"x" * 5000)
    assert resp.status_code == 413 and resp.json()["errcode"] == "M_TOO_LARGE"

    async def chunks() -> Any:  # no Content-Length: the limit is enforced while streaming
        for _ in range(10):
            yield b"y" * 500

    resp = await alice.http.post(f"{MV3}/upload", content=chunks(), headers={"Authorization": f"Bearer {alice.token}"})
    assert resp.status_code == 413
    assert list((tmp_path / "media" / "tmp").iterdir()) == []
    ok = await alice.request("POST", f"{MV3}/upload", raw=b"z" * 1000)
    assert ok.status_code == 200


async def test_thumbnails(client: MatrixClient, config_overrides: dict[str, Any]) -> None:
    alice = await client.register()
    resp = await alice.request("POST", f"{MV3}/upload", raw=_png(1000, 500), headers={"Content-Type": "image/png"})
    server, media_id = _mxc_parts(resp.json()["content_uri"])

    async def thumb(w: int, h: int, method: str) -> Image.Image:
        r = await alice.request("GET", f"{V1}/thumbnail/{server}/{media_id}", params={"width": w, "height": h, "method": method})
        assert r.status_code == 200, r.text
        return Image.open(io.BytesIO(r.content))

    assert (await thumb(96, 96, "crop")).size == (96, 96)
    assert (await thumb(90, 90, "crop")).size == (96, 96)  # the next size up, never smaller than asked
    scaled = await thumb(320, 240, "scale")
    assert scaled.size == (320, 160)
    again = await thumb(320, 240, "scale")  # cached
    assert again.size == (320, 160)
    small = await alice.request("POST", f"{MV3}/upload", raw=_png(20, 10), headers={"Content-Type": "image/png"})
    s2, m2 = _mxc_parts(small.json()["content_uri"])
    r = await alice.request("GET", f"{V1}/thumbnail/{s2}/{m2}", params={"width": 640, "height": 480, "method": "scale"})
    assert Image.open(io.BytesIO(r.content)).size == (20, 10)  # no upscaling
    bad = await alice.request("GET", f"{V1}/thumbnail/{server}/{media_id}", params={"width": 0, "height": 5})
    assert bad.status_code == 400
    text = await alice.request("POST", f"{MV3}/upload", raw=b"hello", headers={"Content-Type": "text/plain"})
    s3, m3 = _mxc_parts(text.json()["content_uri"])
    r = await alice.request("GET", f"{V1}/thumbnail/{s3}/{m3}", params={"width": 32, "height": 32})
    assert r.status_code == 400


async def test_async_create_then_upload(client: MatrixClient) -> None:
    alice = await client.register()
    bob = await client.register()
    created = await alice.ok("POST", "/_matrix/media/v1/create", {})
    server, media_id = _mxc_parts(created["content_uri"])
    assert created["unused_expires_at"] > 0
    assert (await alice.get(f"{V1}/download/{server}/{media_id}")).status_code == 404
    r = await bob.request("PUT", f"{MV3}/upload/{server}/{media_id}", raw=b"not yours")
    assert r.status_code == 403
    r = await alice.request("PUT", f"{MV3}/upload/{server}/{media_id}", raw=b"mine", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    r = await alice.request("PUT", f"{MV3}/upload/{server}/{media_id}", raw=b"again")
    assert r.status_code == 409 and r.json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    got = await alice.request("GET", f"{V1}/download/{server}/{media_id}")
    assert got.content == b"mine"


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = (b'<html><head><title>Plain title</title><meta property="og:title" content="Parley preview">'
                b'<meta property="og:description" content="A page"></head></html>')
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def page() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/page"
    finally:
        srv.shutdown()


async def test_preview_disabled_by_default(client: MatrixClient, page: str) -> None:
    alice = await client.register()
    r = await alice.get(f"{V1}/preview_url", params={"url": page})
    assert r.status_code == 403


@pytest.mark.parametrize("config_overrides", [{"url_preview_enabled": True}])
async def test_preview_refuses_loopback(client: MatrixClient, config_overrides: dict[str, Any], page: str) -> None:
    alice = await client.register()
    r = await alice.get(f"{V1}/preview_url", params={"url": page})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    r = await alice.get(f"{V1}/preview_url", params={"url": "file:///etc/passwd"})
    assert r.status_code == 400


@pytest.mark.parametrize("config_overrides", [{"url_preview_enabled": True, "url_preview_ip_allowlist": ("127.0.0.0/8",)}])
async def test_preview_allow_listed(client: MatrixClient, config_overrides: dict[str, Any], page: str) -> None:
    alice = await client.register()
    og = await alice.ok("GET", f"{V1}/preview_url", params={"url": page})
    assert og["og:title"] == "Parley preview" and og["og:description"] == "A page"
