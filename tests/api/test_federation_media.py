"""Media across servers, in-process (SQLite and PostgreSQL): authenticated federation media
served as multipart/mixed, and the client's downloads of other servers' media (fetched over
federation media, the legacy endpoint as a fallback, a Location redirect, size limits while
streaming, the local cache, refused private addresses)."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from federation.service import Federation
from homeserver.app import Homeserver
from homeserver.config_federation import FederationConfig
from tests.api.test_federation_api import FED_ON, REMOTE, REMOTE_KEY, remote_keys_handler, signed, use_transport
from tests.conftest import MatrixClient
from tests.media_conftest import png

SMALL = pytest.mark.parametrize("config_overrides", [
    {"federation": FederationConfig(enabled=True), "max_upload_bytes": 4096}])
PICTURE = png(40, 30)


class BrokenStream(httpx.AsyncByteStream):
    """An answer whose connection drops after the first bytes."""

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield b"--b0und4ry\r\nContent-Type: application/json\r\n\r\n{}\r\n--b0und4ry\r\n\r\npartial"
        raise httpx.ReadError("connection reset")


def multipart(media: bytes | None, headers: dict[str, str], boundary: str = "b0und4ry") -> httpx.Response:
    part2 = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
    body = (f"preamble\r\n--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n".encode()
            + part2 + b"\r\n" + (media or b"") + f"\r\n--{boundary}--\r\n".encode())
    return httpx.Response(200, content=body, headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})


class Remote:
    """remote.example with media: `pic` (federation media), `old` (legacy endpoint only),
    `moved` (a Location part), `big` (larger than the local limit)."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host, path = request.headers["host"], request.url.path
        if host == "down.example":
            raise httpx.ConnectError("refused")
        if path.startswith(("/_matrix/key/", "/.well-known/")):
            return remote_keys_handler([])(request)
        self.hits.append(f"{host}{path}")
        fed = "/_matrix/federation/v1/media/download/"
        if host == "cdn.example" and path == "/files/moved":
            return httpx.Response(200, content=PICTURE, headers={"Content-Type": "image/png"})
        if host != REMOTE:
            return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})
        if path == fed + "pic":
            assert request.headers["authorization"].startswith("X-Matrix ")
            return multipart(PICTURE, {"Content-Type": "image/png",
                                       "Content-Disposition": "inline; filename*=utf-8''caf%C3%A9.png"})
        if path == fed + "moved":
            return multipart(None, {"Location": "https://cdn.example/files/moved"})
        if path == fed + "broken":
            return httpx.Response(200, stream=BrokenStream(),
                                  headers={"Content-Type": "multipart/mixed; boundary=b0und4ry"})
        if path == fed + "big":
            return multipart(b"x" * 10_000, {"Content-Type": "application/octet-stream"})
        if path == f"/_matrix/media/v3/download/{REMOTE}/old":
            assert "authorization" not in request.headers
            return httpx.Response(200, content=b"old bytes", headers={
                "Content-Type": "text/plain", "Content-Disposition": 'attachment; filename="old.txt"'})
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no such media"})


def use_remote(hs: Homeserver, handler: Callable[[httpx.Request], httpx.Response]) -> None:
    use_transport(hs, handler)
    hs.media.remote.fetcher = hs.federation.media


def parse_multipart(resp: httpx.Response) -> list[Any]:
    ctype = resp.headers["content-type"]
    assert ctype.startswith("multipart/mixed; boundary=")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + resp.content)
    return list(msg.iter_parts())


@FED_ON
async def test_federation_media_is_multipart(client: MatrixClient, hs: Homeserver) -> None:
    use_transport(hs, remote_keys_handler([]))
    alice = await client.register("alice")
    uri = (await alice.ok("POST", "/_matrix/media/v3/upload?filename=pic.png", raw=PICTURE,
                          headers={"Content-Type": "image/png"}))["content_uri"]
    media_id = uri.rsplit("/", 1)[1]
    path = f"/_matrix/federation/v1/media/download/{media_id}"
    assert (await client.get(path)).status_code == 401
    resp = await client.get(path, headers=signed(REMOTE_KEY, REMOTE, hs.server_name, "GET", path))
    assert resp.status_code == 200
    meta, media = parse_multipart(resp)
    assert meta.get_content_type() == "application/json" and meta.get_payload() == "{}"
    assert media.get_content_type() == "image/png" and media.get_payload(decode=True) == PICTURE
    assert media["Content-Disposition"] == 'inline; filename="pic.png"'
    assert int(resp.headers["content-length"]) == len(resp.content)
    path = f"/_matrix/federation/v1/media/thumbnail/{media_id}?width=16&height=16&method=scale"
    resp = await client.get(path, headers=signed(REMOTE_KEY, REMOTE, hs.server_name, "GET", path))
    assert resp.status_code == 200
    _, thumb = parse_multipart(resp)
    assert thumb.get_content_type() in ("image/png", "image/jpeg") and len(thumb.get_payload(decode=True)) > 0
    for bad, status in (("/_matrix/federation/v1/media/download/nosuchmedia", 404),
                        ("/_matrix/federation/v1/media/download/bad%20id", 400),
                        (f"/_matrix/federation/v1/media/thumbnail/{media_id}?width=16", 400)):
        resp = await client.get(bad, headers=signed(REMOTE_KEY, REMOTE, hs.server_name, "GET", bad))
        assert resp.status_code == status and resp.json()["errcode"].startswith("M_"), bad


@FED_ON
async def test_remote_media_is_fetched_once_then_cached(client: MatrixClient, hs: Homeserver) -> None:
    remote = Remote()
    use_remote(hs, remote)
    alice = await client.register("alice")
    for _ in range(2):
        resp = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/pic")
        assert resp.status_code == 200 and resp.content == PICTURE
        assert resp.headers["content-type"] == "image/png"
        assert resp.headers["content-disposition"] == "inline; filename=\"caf_.png\"; filename*=utf-8''caf%C3%A9.png"
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert remote.hits == [f"{REMOTE}/_matrix/federation/v1/media/download/pic"]
    thumb = await alice.get(f"/_matrix/client/v1/media/thumbnail/{REMOTE}/pic?width=8&height=8&method=crop")
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
    assert len(remote.hits) == 1  # thumbnailed from the cached copy
    # The legacy endpoint of an older server, and a Location part pointing elsewhere.
    old = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/old")
    assert old.status_code == 200 and old.content == b"old bytes"
    assert old.headers["content-disposition"] == 'inline; filename="old.txt"'
    moved = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/moved/named.png")
    assert moved.status_code == 200 and moved.content == PICTURE
    assert moved.headers["content-disposition"] == 'inline; filename="named.png"'
    assert "cdn.example/files/moved" in remote.hits
    missing = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/nothing")
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"
    broken = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/broken")
    assert broken.status_code == 502 and broken.json()["errcode"] == "M_UNKNOWN"
    assert await hs.stores.remote_media.get(REMOTE, "broken") is None
    down = await alice.get("/_matrix/client/v1/media/download/down.example/pic")
    assert down.status_code == 502 and down.json()["errcode"] == "M_UNKNOWN"
    # Unauthenticated media stays frozen, for remote media too.
    assert (await alice.get(f"/_matrix/media/v3/download/{REMOTE}/pic")).status_code == 404


@SMALL
async def test_oversized_remote_media_is_cut_off_and_not_kept(client: MatrixClient, hs: Homeserver) -> None:
    remote = Remote()
    use_remote(hs, remote)
    alice = await client.register("alice")
    for _ in range(2):
        resp = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/big")
        assert resp.status_code == 502 and resp.json()["errcode"] == "M_TOO_LARGE"
    assert remote.hits.count(f"{REMOTE}/_matrix/federation/v1/media/download/big") == 2  # nothing cached
    assert await hs.stores.remote_media.get(REMOTE, "big") is None
    assert list((hs.media.tmp_dir).iterdir()) == []


@FED_ON
async def test_remote_media_on_private_addresses_is_refused(client: MatrixClient, hs: Homeserver) -> None:
    remote = Remote()

    async def resolve(host: str, port: int) -> list[str]:
        return ["10.1.2.3"] if host == REMOTE else ["93.184.216.34"]

    async def no_srv(name: str) -> list[tuple[str, int]]:
        return []

    hs.federation = Federation(hs.server_name, hs.config.federation, hs.signing_key, hs.retired_keys,
                               hs.stores.server_keys, transport=httpx.MockTransport(remote), resolve_ip=resolve,
                               srv_lookup=no_srv, retry_delay_s=0)
    hs.media.remote.fetcher = hs.federation.media
    alice = await client.register("alice")
    resp = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/pic")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    assert remote.hits == []


async def test_remote_media_without_federation_is_not_found(client: MatrixClient) -> None:
    alice = await client.register("alice")
    resp = await alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/pic")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"


@FED_ON
async def test_concurrent_downloads_of_one_remote_media_share_one_fetch(client: MatrixClient, hs: Homeserver) -> None:
    remote = Remote()
    use_remote(hs, remote)
    alice = await client.register("alice")
    got = await asyncio.gather(*(alice.get(f"/_matrix/client/v1/media/download/{REMOTE}/pic") for _ in range(5)))
    assert [(r.status_code, r.content) for r in got] == [(200, PICTURE)] * 5
    assert remote.hits == [f"{REMOTE}/_matrix/federation/v1/media/download/pic"]
