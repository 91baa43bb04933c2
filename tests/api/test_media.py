"""Media repository: local and S3 storage (a real S3-protocol server, moto), crossed with SQLite and
PostgreSQL; streaming limits, thumbnails, async uploads, frozen legacy endpoints, URL previews."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from client_api.routes.media import MEDIA_CSP, content_disposition
from homeserver.app import Homeserver
from homeserver.config import ConfigError, build_config
from homeserver.media import service as media_service
from homeserver.media.preview import UrlPreviewer, parse_html
from homeserver.media.thumbnails import target_size
from tests.conftest import MatrixClient
from tests.media_conftest import (  # noqa: F401  (fixtures)
    PageServer,
    config_overrides,
    extra_config,
    jpeg,
    media_kind,
    page_server,
    png,
    s3_client,
    s3_server,
)

V1 = "/_matrix/client/v1/media"
MV3 = "/_matrix/media/v3"
LOCAL_ONLY = pytest.mark.parametrize("media_kind", ["local"])
SPEC_CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
            "style-src 'unsafe-inline'; object-src 'self';")


def _mxc(uri: str) -> tuple[str, str]:
    assert uri.startswith("mxc://"), uri
    server, media_id = uri[6:].split("/", 1)
    return server, media_id


async def _upload(user: MatrixClient, data: bytes, ctype: str | None = "application/octet-stream",
                  filename: str | None = None) -> tuple[str, str]:
    headers = {"Content-Type": ctype} if ctype else {}
    params = {"filename": filename} if filename else None
    resp = await user.request("POST", f"{MV3}/upload", raw=data, params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return _mxc(resp.json()["content_uri"])


def _stored_files(hs: Homeserver, tmp_path: Path) -> list[str]:
    """Every stored object: files under media_dir (outside tmp/) or keys in the S3 bucket."""
    if hs.config.media_backend == "s3":
        listing = s3_client(str(hs.config.s3_endpoint)).list_objects_v2(Bucket=hs.config.s3_bucket)
        return [o["Key"] for o in listing.get("Contents", [])]
    root = tmp_path / "media"
    return [str(p) for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts]


# ---------------------------------------------------------------------------------- round trips


async def test_upload_download_round_trip(client: MatrixClient, hs: Homeserver, tmp_path: Path) -> None:
    alice = await client.register()
    data = os.urandom(3 * 1024 * 1024 + 17)  # several MiB, not a multiple of any chunk size
    server, media_id = await _upload(alice, data, filename="report final.bin")
    assert server == hs.server_name
    row = await hs.stores.media.get(media_id)
    assert row is not None and row["size"] == len(data) and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert row["uploader"] == alice.user_id and row["filename"] == "report final.bin" and not row["reserved"]
    assert _stored_files(hs, tmp_path)

    got = await alice.get(f"{V1}/download/{server}/{media_id}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == 'attachment; filename="report final.bin"'
    assert got.headers["cross-origin-resource-policy"] == "cross-origin"
    assert got.headers["content-security-policy"] == SPEC_CSP == MEDIA_CSP
    named = await alice.get(f"{V1}/download/{server}/{media_id}/other.txt")
    assert named.status_code == 200 and named.content == data
    assert named.headers["content-disposition"] == 'attachment; filename="other.txt"'

    # matrix-nio builds download URLs with ?access_token=; without any token: 401
    q = await client.get(f"{V1}/download/{server}/{media_id}", params={"access_token": alice.token})
    assert q.status_code == 200 and q.content == data
    anon = await client.get(f"{V1}/download/{server}/{media_id}")
    assert anon.status_code == 401 and anon.json()["errcode"] == "M_MISSING_TOKEN"
    bad = await client.get(f"{V1}/download/{server}/{media_id}", token="not-a-token")
    assert bad.status_code == 401 and bad.json()["errcode"] == "M_UNKNOWN_TOKEN"
    # another user of the server may download it too
    bob = await client.register()
    assert (await bob.get(f"{V1}/download/{server}/{media_id}")).content == data


async def test_content_types_and_filenames(client: MatrixClient) -> None:
    alice = await client.register()
    server, media_id = await _upload(alice, png(4, 4), "image/png", "pic.png")
    r = await alice.get(f"{V1}/download/{server}/{media_id}")
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'inline; filename="pic.png"'

    # HTML (and other scriptable types) never inline, never as text/html
    server, media_id = await _upload(alice, b"<script>alert(1)</script>", "text/html", "x.html")
    r = await alice.get(f"{V1}/download/{server}/{media_id}")
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["content-type"] == "application/octet-stream"
    server, media_id = await _upload(alice, b"<svg/>", "image/svg+xml")
    r = await alice.get(f"{V1}/download/{server}/{media_id}")
    assert r.headers["content-disposition"] == "attachment" and r.headers["content-type"] == "application/octet-stream"

    # non-ASCII names: an ASCII fallback plus the exact RFC 5987 form
    server, media_id = await _upload(alice, b"hi", "text/plain", 'Grüße "ünd" ✓.txt')
    r = await alice.get(f"{V1}/download/{server}/{media_id}")
    cd = r.headers["content-disposition"]
    assert cd.startswith('inline; filename="Gr__e __nd_ _.txt"; ')
    assert "filename*=utf-8''Gr%C3%BC%C3%9Fe%20%22%C3%BCnd%22%20%E2%9C%93.txt" in cd
    assert r.headers["content-type"].startswith("text/plain")

    # no Content-Type at all: served as bytes
    server, media_id = await _upload(alice, b"\x00\x01", None)
    r = await alice.get(f"{V1}/download/{server}/{media_id}")
    assert r.headers["content-type"] == "application/octet-stream" and r.content == b"\x00\x01"

    # empty uploads are fine
    server, media_id = await _upload(alice, b"", "text/plain")
    r = await alice.get(f"{V1}/download/{server}/{media_id}")
    assert r.status_code == 200 and r.content == b""

    for bad_name in ("a/b", "x" * 300):
        r = await alice.request("POST", f"{MV3}/upload", raw=b"x", params={"filename": bad_name})
        assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"


def test_content_disposition_encoding() -> None:
    assert content_disposition("inline", None) == "inline"
    assert content_disposition("inline", "a b.png") == 'inline; filename="a b.png"'
    assert content_disposition("attachment", "ä;.txt") == (
        "attachment; filename=\"__.txt\"; filename*=utf-8''%C3%A4%3B.txt"
    )
    assert content_disposition("attachment", 'q"\\.txt').startswith('attachment; filename="q__.txt"; ')


@LOCAL_ONLY
async def test_bad_ids_remote_servers_and_config(client: MatrixClient, hs: Homeserver) -> None:
    alice = await client.register()
    cfg = await alice.ok("GET", f"{V1}/config")
    assert cfg == {"m.upload.size": hs.config.max_upload_bytes}
    assert (await client.get(f"{V1}/config")).status_code == 401
    server, media_id = await _upload(alice, b"real")
    cases = {
        f"{V1}/download/test.parley/..%2F..%2Fetc%2Fpasswd": (400, 404),
        f"{V1}/download/test.parley/a.b": (400,),
        f"{V1}/download/test.parley/%2E%2E": (400,),
        f"{V1}/download/test.parley/nope": (404,),
        f"{V1}/download/other.server/{media_id}": (404,),
        f"{V1}/thumbnail/other.server/{media_id}?width=32&height=32": (404,),
        f"{V1}/download/test.parley/{media_id[:4]}.{media_id[4:]}": (400,),
    }
    for path, statuses in cases.items():
        resp = await alice.get(path)
        assert resp.status_code in statuses, (path, resp.status_code)
        assert resp.json()["errcode"] in ("M_INVALID_PARAM", "M_NOT_FOUND", "M_UNRECOGNIZED"), path
    r = await alice.request("PUT", f"{MV3}/upload/{server}/bad.id", raw=b"x")
    assert r.status_code == 400
    r = await alice.request("PUT", f"{MV3}/upload/other.server/abc", raw=b"x")
    assert r.status_code == 403


@LOCAL_ONLY
async def test_frozen_legacy_endpoints(client: MatrixClient) -> None:
    alice = await client.register()
    server, media_id = await _upload(alice, png(10, 10), "image/png", "a.png")
    for path in (f"{MV3}/download/{server}/{media_id}", f"{MV3}/download/{server}/{media_id}/a.png",
                 f"{MV3}/thumbnail/{server}/{media_id}?width=32&height=32"):
        for who in (client, alice):  # with or without a token: the old endpoints serve nothing new
            r = await who.get(path)
            assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND", path
    # the authenticated endpoints do serve it
    assert (await alice.get(f"{V1}/download/{server}/{media_id}")).status_code == 200


# ---------------------------------------------------------------------------------- limits


@pytest.mark.parametrize("extra_config", [{"max_upload_bytes": 1000}])
async def test_size_limit_keeps_nothing(client: MatrixClient, hs: Homeserver, tmp_path: Path) -> None:
    alice = await client.register()
    assert (await alice.ok("GET", f"{V1}/config"))["m.upload.size"] == 1000
    r = await alice.request("POST", f"{MV3}/upload", raw=b"x" * 5000)
    assert r.status_code == 413 and r.json()["errcode"] == "M_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: enforced while streaming
        for _ in range(10):
            yield b"y" * 500

    r = await alice.http.post(f"{MV3}/upload", content=chunks(), headers={"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 413 and r.json()["errcode"] == "M_TOO_LARGE"
    assert list((tmp_path / "media" / "tmp").iterdir()) == []
    assert _stored_files(hs, tmp_path) == []
    count = await hs.stores.db.fetchval("SELECT COUNT(*) FROM media")
    assert count == 0

    created = await alice.ok("POST", "/_matrix/media/v1/create", {})
    s, m = _mxc(created["content_uri"])
    r = await alice.http.put(f"{MV3}/upload/{s}/{m}", content=chunks(),
                             headers={"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 413
    # the failed upload released its claim: the reservation can still be filled
    r = await alice.request("PUT", f"{MV3}/upload/{s}/{m}", raw=b"fits")
    assert r.status_code == 200, r.text

    s, m = await _upload(alice, b"z" * 1000)  # exactly the limit is fine
    assert (await alice.get(f"{V1}/download/{s}/{m}")).content == b"z" * 1000


# ---------------------------------------------------------------------------------- thumbnails


async def test_thumbnails(client: MatrixClient, hs: Homeserver) -> None:
    alice = await client.register()
    server, media_id = await _upload(alice, png(1000, 500), "image/png")

    async def thumb(w: int, h: int, method: str, mid: str = media_id) -> Image.Image:
        r = await alice.get(f"{V1}/thumbnail/{server}/{mid}", params={"width": w, "height": h, "method": method})
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"] in ('inline; filename="thumbnail.png"',
                                                    'inline; filename="thumbnail.jpg"')
        assert r.headers["content-type"] in ("image/png", "image/jpeg")
        assert r.headers["cross-origin-resource-policy"] == "cross-origin"
        img = Image.open(io.BytesIO(r.content))
        assert img.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[r.headers["content-type"]]
        return img

    assert (await thumb(32, 32, "crop")).size == (32, 32)
    assert (await thumb(96, 96, "crop")).size == (96, 96)
    assert (await thumb(90, 90, "crop")).size == (96, 96)  # the next size up, never smaller than asked
    scaled = await thumb(320, 240, "scale")
    assert scaled.size == (320, 160)  # within the bounds, aspect ratio kept
    assert (await thumb(300, 100, "scale")).size == (320, 160)
    assert (await thumb(5000, 5000, "scale")).size == (800, 400)  # the largest size we make
    # generated once, then served from the cache (the stored row and object are reused)
    cached = await hs.stores.media.get_thumbnail(media_id, 320, 240, "scale")
    assert cached is not None and cached["content_type"] == "image/jpeg"
    first = await alice.get(f"{V1}/thumbnail/{server}/{media_id}", params={"width": 320, "height": 240})
    again = await alice.get(f"{V1}/thumbnail/{server}/{media_id}", params={"width": 320, "height": 240})
    assert first.content == again.content and int(again.headers["content-length"]) == cached["size"]

    # never upscaled
    s2, small = await _upload(alice, png(20, 10), "image/png")
    assert (await thumb(640, 480, "scale", small)).size == (20, 10)
    assert (await thumb(96, 96, "crop", small)).size == (20, 10)
    s3, tall = await _upload(alice, jpeg(50, 400), "image/jpeg")
    assert (await thumb(96, 96, "crop", tall)).size == (50, 96)
    # transparency survives as PNG; JPEG stays JPEG
    _, alpha = await _upload(alice, png(200, 200, alpha=True), "image/png")
    r = await alice.get(f"{V1}/thumbnail/{server}/{alpha}", params={"width": 96, "height": 96, "method": "crop"})
    assert r.headers["content-type"] == "image/png" and Image.open(io.BytesIO(r.content)).mode == "RGBA"

    for params in ({"width": 0, "height": 5}, {"width": 32, "height": 32, "method": "zoom"},
                   {"width": "x", "height": 5}, {"width": 32}):
        bad = await alice.get(f"{V1}/thumbnail/{server}/{media_id}", params=params)
        assert bad.status_code == 400, params
    _, text = await _upload(alice, b"hello", "text/plain")
    r = await alice.get(f"{V1}/thumbnail/{server}/{text}", params={"width": 32, "height": 32})
    assert r.status_code == 400 and r.json()["errcode"] == "M_UNKNOWN"
    _, broken = await _upload(alice, b"not really a png", "image/png")
    r = await alice.get(f"{V1}/thumbnail/{server}/{broken}", params={"width": 32, "height": 32})
    assert r.status_code == 400
    anonymous = await client.get(f"{V1}/thumbnail/{server}/{media_id}", params={"width": 32, "height": 32})
    assert anonymous.status_code == 401


def test_thumbnail_target_sizes() -> None:
    assert target_size(1000, 500, 96, 96, "crop") == (96, 96)
    assert target_size(1000, 500, 320, 240, "scale") == (320, 160)
    assert target_size(10, 10, 320, 240, "scale") == (10, 10)
    assert target_size(10, 500, 96, 96, "crop") == (10, 96)


# ---------------------------------------------------------------------------------- async uploads


async def test_async_create_then_upload(client: MatrixClient, hs: Homeserver) -> None:
    alice = await client.register()
    bob = await client.register()
    created = await alice.ok("POST", "/_matrix/media/v1/create", {})
    server, media_id = _mxc(created["content_uri"])
    assert created["unused_expires_at"] > 0
    r = await alice.get(f"{V1}/download/{server}/{media_id}", params={"timeout_ms": 0})
    assert r.status_code == 504 and r.json()["errcode"] == "M_NOT_YET_UPLOADED"
    r = await bob.request("PUT", f"{MV3}/upload/{server}/{media_id}", raw=b"not yours")
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"

    # a download that waits is answered as soon as the upload lands
    waiting = asyncio.create_task(alice.get(f"{V1}/download/{server}/{media_id}", params={"timeout_ms": 10_000}))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    r = await alice.request("PUT", f"{MV3}/upload/{server}/{media_id}", raw=b"mine",
                            params={"filename": "mine.txt"}, headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and r.json() == {}
    got = await asyncio.wait_for(waiting, 5)
    assert got.status_code == 200 and got.content == b"mine"
    assert got.headers["content-disposition"] == 'inline; filename="mine.txt"'

    r = await alice.request("PUT", f"{MV3}/upload/{server}/{media_id}", raw=b"again")
    assert r.status_code == 409 and r.json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    assert (await alice.get(f"{V1}/download/{server}/{media_id}")).content == b"mine"

    # direct uploads cannot be overwritten either
    s2, m2 = await _upload(alice, b"direct")
    r = await alice.request("PUT", f"{MV3}/upload/{s2}/{m2}", raw=b"over")
    assert r.status_code == 409
    r = await alice.request("PUT", f"{MV3}/upload/{server}/neverreserved", raw=b"x")
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"

    # an expired reservation is gone
    created = await alice.ok("POST", "/_matrix/media/v1/create", {})
    _, expired = _mxc(created["content_uri"])
    await hs.stores.db.execute("UPDATE media SET expires_ts = 1 WHERE media_id = $1", expired)
    r = await alice.request("PUT", f"{MV3}/upload/{server}/{expired}", raw=b"late")
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = await alice.get(f"{V1}/download/{server}/{expired}", params={"timeout_ms": 0})
    assert r.status_code == 404


@LOCAL_ONLY
async def test_concurrent_puts_only_one_wins(client: MatrixClient) -> None:
    alice = await client.register()
    created = await alice.ok("POST", "/_matrix/media/v1/create", {})
    server, media_id = _mxc(created["content_uri"])
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first "
        await release.wait()
        yield b"upload"

    first = asyncio.create_task(alice.http.put(f"{MV3}/upload/{server}/{media_id}", content=slow(),
                                               headers={"Authorization": f"Bearer {alice.token}"}))
    await asyncio.sleep(0.3)
    second = await alice.request("PUT", f"{MV3}/upload/{server}/{media_id}", raw=b"second")
    assert second.status_code == 409 and second.json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    release.set()
    r = await asyncio.wait_for(first, 5)
    assert r.status_code == 200, r.text
    assert (await alice.get(f"{V1}/download/{server}/{media_id}")).content == b"first upload"


@LOCAL_ONLY
async def test_pending_reservations_are_limited(client: MatrixClient, monkeypatch: Any) -> None:
    monkeypatch.setattr(media_service, "MAX_PENDING_RESERVATIONS", 2)
    alice = await client.register()
    bob = await client.register()
    await alice.ok("POST", "/_matrix/media/v1/create", {})
    last = await alice.ok("POST", "/_matrix/media/v1/create", {})
    r = await alice.post("/_matrix/media/v1/create", {})
    assert r.status_code == 429 and r.json()["errcode"] == "M_LIMIT_EXCEEDED"
    await bob.ok("POST", "/_matrix/media/v1/create", {})  # per user
    s, m = _mxc(last["content_uri"])
    assert (await alice.request("PUT", f"{MV3}/upload/{s}/{m}", raw=b"x")).status_code == 200
    await alice.ok("POST", "/_matrix/media/v1/create", {})  # a filled one no longer counts


# ---------------------------------------------------------------------------------- URL previews


def _og_page(ps: PageServer) -> None:
    body = (b'<html><head><title> Plain\n title </title><meta property="og:title" content="Parley &amp; preview">'
            b'<meta property="og:description" content="A page"><meta property="og:image" content="/img.png">'
            b'</head><body>' + b"x" * 1000 + b"</body></html>")
    ps.route("/page", lambda h: h.reply(200, "text/html; charset=utf-8", body))
    ps.route("/img.png", lambda h: h.reply(200, "image/png", png(64, 32)))
    ps.route("/redirect", lambda h: h.reply(302, "text/plain", b"", {"Location": "/page"}))


@LOCAL_ONLY
async def test_preview_disabled_by_default(client: MatrixClient, page_server: PageServer) -> None:
    _og_page(page_server)
    alice = await client.register()
    r = await alice.get(f"{V1}/preview_url", params={"url": page_server.base + "/page"})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    assert page_server.seen_hosts == []


@LOCAL_ONLY
@pytest.mark.parametrize("extra_config", [{"url_preview_enabled": True}])
async def test_preview_refuses_private_addresses(client: MatrixClient, page_server: PageServer) -> None:
    _og_page(page_server)
    alice = await client.register()
    for url in (page_server.base + "/page", f"http://localhost:{page_server.port}/page",
                f"http://[::1]:{page_server.port}/page", "http://169.254.169.254/latest/meta-data/",
                "http://10.0.0.1/", "http://0.0.0.0:1/"):
        r = await alice.get(f"{V1}/preview_url", params={"url": url})
        assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", url
    for url in ("file:///etc/passwd", "gopher://example.org/", f"http://user:pw@127.0.0.1:{page_server.port}/"):
        r = await alice.get(f"{V1}/preview_url", params={"url": url})
        assert r.status_code == 400, url
    assert (await alice.get(f"{V1}/preview_url")).status_code == 400
    assert page_server.seen_hosts == []  # nothing was ever fetched
    assert (await client.get(f"{V1}/preview_url", params={"url": "https://example.org"})).status_code == 401


def test_preview_address_checks() -> None:
    p = UrlPreviewer(True, ())
    for ip in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
               "0.0.0.0", "224.0.0.1", "::1", "::", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
               "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"):
        assert not p.allowed_ip(ip), ip
    for ip in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert p.allowed_ip(ip), ip
    allowed = UrlPreviewer(True, ("127.0.0.0/8",))
    assert allowed.allowed_ip("127.0.0.5") and allowed.allowed_ip("::ffff:127.0.0.1")
    assert not allowed.allowed_ip("10.0.0.1")


def test_preview_html_parsing() -> None:
    og = parse_html('<title>T&eacute;st</title><meta name="description" content="d">'.encode("latin-1"), "latin-1")
    assert og == {"og:title": "Tést", "og:description": "d"}
    assert isinstance(parse_html(b"<html><head><meta property='og:title' content='x'", "no-such-codec"), dict)


@LOCAL_ONLY
@pytest.mark.parametrize("extra_config", [{"url_preview_enabled": True, "url_preview_ip_allowlist": ("127.0.0.0/8",)}])
async def test_preview_allow_listed(client: MatrixClient, hs: Homeserver, page_server: PageServer) -> None:
    _og_page(page_server)
    alice = await client.register()
    og = await alice.ok("GET", f"{V1}/preview_url", params={"url": page_server.base + "/redirect"})
    assert og["og:title"] == "Parley & preview" and og["og:description"] == "A page"
    # the image was fetched through the same guard and stored as local media
    s, m = _mxc(og["og:image"])
    assert og["og:image:type"] == "image/png" and og["matrix:image:size"] > 0
    img = await alice.get(f"{V1}/download/{s}/{m}")
    assert img.status_code == 200 and Image.open(io.BytesIO(img.content)).size == (64, 32)
    assert len(img.content) == og["matrix:image:size"]
    # the deprecated path answers the same (authenticated)
    assert (await alice.ok("GET", f"{MV3}/preview_url", params={"url": page_server.base + "/page"}))["og:title"]

    # a name is resolved once and the connection goes to the checked address (no rebinding)
    async def resolve(host: str, port: int) -> list[str]:
        return {"pinned.example": ["127.0.0.1"], "mixed.example": ["127.0.0.1", "10.0.0.7"]}[host]

    hs.media.previewer.resolve = resolve
    og = await alice.ok("GET", f"{V1}/preview_url", params={"url": f"http://pinned.example:{page_server.port}/page"})
    assert og["og:title"] == "Parley & preview"
    assert f"pinned.example:{page_server.port}" in page_server.seen_hosts
    # one private address among the answers is enough to refuse
    r = await alice.get(f"{V1}/preview_url", params={"url": f"http://mixed.example:{page_server.port}/page"})
    assert r.status_code == 403


@LOCAL_ONLY
@pytest.mark.parametrize("extra_config", [{"url_preview_enabled": True, "url_preview_ip_allowlist": ("127.0.0.1/32",)}])
async def test_preview_redirect_is_rechecked(client: MatrixClient, page_server: PageServer) -> None:
    _og_page(page_server)
    page_server.route("/away", lambda h: h.reply(302, "text/plain", b"",
                                                 {"Location": f"http://127.0.0.2:{page_server.port}/page"}))
    alice = await client.register()
    r = await alice.get(f"{V1}/preview_url", params={"url": page_server.base + "/away"})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    assert page_server.seen_hosts == [f"127.0.0.1:{page_server.port}"]


# ---------------------------------------------------------------------------------- config


def test_media_config_validation() -> None:
    cfg = build_config({"max_upload_bytes": "2048", "media_backend": "s3", "s3_endpoint": "http://minio:9000",
                        "url_preview_enabled": "true", "url_preview_ip_allowlist": "127.0.0.0/8,::1/128"})
    assert cfg.max_upload_bytes == 2048 and cfg.media_backend == "s3" and cfg.url_preview_enabled
    assert cfg.url_preview_ip_allowlist == ("127.0.0.0/8", "::1/128")
    assert build_config({}).url_preview_enabled is False and build_config({}).media_backend == "local"
    for bad in ({"media_backend": "ftp"}, {"max_upload_bytes": 0}, {"url_preview_ip_allowlist": ["nope"]},
                {"url_preview_enabled": "maybe"}):
        with pytest.raises(ConfigError):
            build_config(bad)
