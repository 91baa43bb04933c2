"""Fixtures for the media tests: a real S3-protocol server (moto in server mode) and a loopback
web server for URL previews. Imported by tests/api/test_media.py."""

from __future__ import annotations

import http.server
import io
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from PIL import Image

S3_KEY, S3_SECRET = "parley-test-key", "parley-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(w: int, h: int, alpha: bool = False) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", (w, h), (200, 30, 30, 128) if alpha else (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 120, 200)).save(buf, "JPEG")
    return buf.getvalue()


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                        region_name="us-east-1")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def extra_config() -> dict[str, Any]:
    """Per-test config on top of the storage backend (override with parametrize)."""
    return {}


@pytest.fixture(params=["local", "s3"])
def media_kind(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def config_overrides(media_kind: str, extra_config: dict[str, Any], request: Any) -> dict[str, Any]:
    """Overrides tests/conftest.py's fixture: each media test runs on local storage and on S3
    (a fresh bucket on the moto server), crossed with the SQLite/PostgreSQL `backend` param."""
    if media_kind == "s3":
        endpoint = request.getfixturevalue("s3_server")
        bucket = f"parley-{uuid.uuid4().hex[:12]}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        return {"media_backend": "s3", "s3_endpoint": endpoint, "s3_bucket": bucket,
                "s3_access_key": S3_KEY, "s3_secret_key": S3_SECRET, **extra_config}
    return dict(extra_config)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, Callable[[_Handler], None]] = {}
    seen_hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen_hosts.append(self.headers.get("Host", ""))
        route = self.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        route(self)

    def reply(self, status: int, ctype: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class PageServer:
    def __init__(self) -> None:
        handler = type("H", (_Handler,), {"routes": {}, "seen_hosts": []})
        self.handler: Any = handler
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.srv.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def route(self, path: str, fn: Callable[[Any], None]) -> None:
        self.handler.routes[path] = fn

    @property
    def seen_hosts(self) -> list[str]:
        return list(self.handler.seen_hosts)


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    ps = PageServer()
    t = threading.Thread(target=ps.srv.serve_forever, daemon=True)
    t.start()
    try:
        yield ps
    finally:
        ps.srv.shutdown()
        ps.srv.server_close()
