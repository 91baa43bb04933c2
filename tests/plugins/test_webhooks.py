"""Webhooks against a real server: an incoming webhook (Slack's payload shape) posts to its
room; an outgoing webhook POSTs matching messages, in order, to a loopback HTTP server with a
valid HMAC signature, retrying after a failure; private addresses are refused unless allowed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeserver.config import Config
from homeserver.config_plugins import PluginsConfig
from homeserver.plugins.webhooks import WebhookSender, signature
from homeserver.protocol.errors import MatrixError
from tests.plugins.conftest import EXT, PluginServer, until


class Receiver:
    """A loopback HTTP server recording POSTs; the first `fail` requests get a 500."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        status = "500 Internal Server Error" if len(self.requests) <= self.fail else "200 OK"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode())
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()


async def test_incoming_webhook_posts_to_the_room(plugin_server: PluginServer) -> None:
    admin = await plugin_server.register("admin")
    bob = await plugin_server.register("bob")
    room = await admin.create_room(invite=[bob.user_id])
    await bob.call("POST", f"/_matrix/client/v3/join/{quote(room)}", {})
    err = await bob.call("POST", f"{EXT}/rooms/{quote(room)}/webhooks", {"kind": "incoming"}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"  # room admins only
    hook = await admin.call("POST", f"{EXT}/rooms/{quote(room)}/webhooks", {"kind": "incoming"})
    url = hook["url"]
    assert url.startswith(plugin_server.base + "/_parley/webhooks/")
    path = url[len(plugin_server.base):]

    r = await plugin_server.http.post(path, json={"text": "Build *passed*", "username": "ci"})
    assert r.status_code == 200, r.text
    msg = await admin.message_from(room, admin.user_id, "Build *passed*")
    assert msg["content"]["org.parley.webhook"] == {"id": hook["id"], "username": "ci"}
    # Slack's form encoding works too.
    r = await plugin_server.http.post(path, data={"payload": json.dumps({"text": "from a form"})})
    assert r.status_code == 200, r.text
    await admin.message_from(room, admin.user_id, "from a form")

    for bad_path, body, status, errcode in [
        (path[:-3] + "xyz", {"text": "x"}, 404, "M_NOT_FOUND"),
        (path, {"text": ""}, 400, "M_BAD_JSON"),
        (path, {"blocks": []}, 400, "M_BAD_JSON"),
    ]:
        r = await plugin_server.http.post(bad_path, json=body)
        assert (r.status_code, r.json()["errcode"]) == (status, errcode)
    r = await plugin_server.http.post(path, content=b"not json", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_NOT_JSON")
    listed = await bob.call("GET", f"{EXT}/rooms/{quote(room)}/webhooks")
    assert listed["webhooks"] == [{"id": hook["id"], "kind": "incoming", "room_id": room, "owner": admin.user_id}]
    await admin.call("DELETE", f"{EXT}/rooms/{quote(room)}/webhooks/{hook['id']}")
    r = await plugin_server.http.post(path, json={"text": "after delete"})
    assert r.status_code == 404


async def test_outgoing_webhook_signed_retried_in_order(plugin_server: PluginServer) -> None:
    admin = await plugin_server.register("admin")
    room = await admin.create_room()
    receiver = Receiver(fail=1)
    async with receiver as url:
        bad = await admin.call("POST", f"{EXT}/rooms/{quote(room)}/webhooks",
                               {"kind": "outgoing", "url": url, "pattern": "(unclosed"}, expect=400)
        assert bad["errcode"] == "M_INVALID_PARAM"
        hook = await admin.call("POST", f"{EXT}/rooms/{quote(room)}/webhooks",
                                {"kind": "outgoing", "url": url, "pattern": "^deploy"})
        secret = hook["secret"]
        await admin.send_text(room, "deploy one")
        await admin.send_text(room, "chatter that does not match")
        await admin.send_text(room, "deploy two")

        async def two_delivered() -> bool:
            return len(receiver.requests) >= 3  # one failure, then both, in order
        await until(two_delivered, timeout=30)
    bodies = []
    for headers, body in receiver.requests:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-parley-signature"] == expected
        bodies.append(json.loads(body)["content"]["body"])
    assert bodies == ["deploy one", "deploy one", "deploy two"]
    first = json.loads(receiver.requests[0][1])
    assert first["room_id"] == room and first["sender"] == admin.user_id and first["webhook_id"] == hook["id"]


@pytest.mark.parametrize("allow, refused", [((), True), (("127.0.0.0/8",), False)])
async def test_private_addresses_need_the_allowlist(allow: tuple[str, ...], refused: bool) -> None:
    config = Config(plugins=PluginsConfig(webhook_ip_allowlist=allow))
    sender = WebhookSender(None, None, config, transport=httpx.MockTransport(lambda r: httpx.Response(200)))  # type: ignore[arg-type]
    if refused:
        with pytest.raises(MatrixError) as e:
            await sender._pinned("http://127.0.0.1:9/x")
        assert e.value.status == 403
    else:
        url, headers = await sender._pinned("http://127.0.0.1:9/x")
        assert url == "http://127.0.0.1:9/x" and headers == {"Host": "127.0.0.1:9"}
    assert signature("k", b"{}") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
