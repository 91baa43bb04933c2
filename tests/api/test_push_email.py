"""Email digests against a real SMTP server (aiosmtpd) on loopback: recipients, subject, both
bodies, no content from encrypted rooms, the unsubscribe link, and no email when read in time.
Time is driven by passing `now_ms` to the digest round; the configured delay is a minute."""

from __future__ import annotations

import asyncio
import email
import re
import time
from collections.abc import AsyncIterator
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from homeserver.app import Homeserver
from homeserver.config_push import EmailConfig
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
DELAY_MS = 60_000


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), email.message_from_bytes(content)))
        return "250 OK"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    inbox = Inbox()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(inbox), "127.0.0.1", 0)
    try:
        yield inbox, server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def config_overrides(smtp: tuple[Inbox, int]) -> dict[str, Any]:
    return {"email": EmailConfig(enabled=True, smtp_host="127.0.0.1", smtp_port=smtp[1],
                                 notif_from="Parley <notify@test.parley>", notif_delay_ms=DELAY_MS)}


async def setup(client: MatrixClient) -> tuple[MatrixClient, MatrixClient, str]:
    alice, bob = await client.register("alice"), await client.register()
    await bob.ok("PUT", f"{V3}/profile/{bob.user_id}/displayname", {"displayname": "Bob <b>"})
    room = await alice.create_room(preset="public_chat", name="Team room")
    await bob.ok("POST", f"{V3}/join/{room}")
    await alice.ok("POST", f"{V3}/pushers/set", {
        "kind": "email", "app_id": "m.email", "pushkey": "alice@example.org", "app_display_name": "Email",
        "device_display_name": "alice@example.org", "lang": "en", "data": {}})
    return alice, bob, room


def bodies(msg: Message) -> tuple[str, str]:
    plain = html = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            plain = part.get_payload(decode=True).decode()  # type: ignore[union-attr]
        elif part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode()  # type: ignore[union-attr]
    return plain, html


def later() -> int:
    return int(time.time() * 1000) + DELAY_MS + 5_000


async def test_digest_and_unsubscribe(client: MatrixClient, hs: Homeserver, smtp: tuple[Inbox, int]) -> None:
    inbox = smtp[0]
    alice, bob, room = await setup(client)
    secret_room = await alice.create_room(preset="public_chat", name="Vault", initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    await bob.ok("POST", f"{V3}/join/{secret_room}")
    await bob.send_text(room, "lunch at noon?")
    await bob.send_text(room, "1 < 2 & so on")
    await bob.send_text(secret_room, "the vault code is 1234")
    # Not yet old enough: nothing goes out.
    assert await hs.notifications.email.run_once(now_ms=int(time.time() * 1000) + 1000) == 0
    assert inbox.messages == []
    assert await hs.notifications.email.run_once(now_ms=later()) == 1
    [(sender, rcpts, msg)] = inbox.messages
    assert sender == "notify@test.parley" and rcpts == ["alice@example.org"]
    assert msg["To"] == "alice@example.org"
    assert msg["Subject"] == "[Parley] 3 unread messages in 2 rooms"
    plain, html = bodies(msg)
    assert "Team room:" in plain and "Bob <b>: lunch at noon?" in plain and "Bob <b>: 1 < 2 & so on" in plain
    assert "Vault:" in plain and "(encrypted message)" in plain
    assert "1234" not in plain and "1234" not in html
    assert "<b>Bob &lt;b&gt;</b>: 1 &lt; 2 &amp; so on" in html and "<h3>Team room</h3>" in html
    # The same notifications are never emailed twice.
    assert await hs.notifications.email.run_once(now_ms=later()) == 0

    link = re.search(r"Stop these emails: (\S+)", plain)
    assert link is not None and link.group(1) in html.replace("&amp;", "&")
    assert msg["List-Unsubscribe"] == f"<{link.group(1)}>"
    url = urlsplit(link.group(1))
    forged = await client.get(url.path, params={"user_id": alice.user_id, "pushkey": "alice@example.org",
                                                "token": "0" * 64})
    assert forged.status_code == 403 and forged.json()["errcode"] == "M_FORBIDDEN"
    assert len((await alice.ok("GET", f"{V3}/pushers"))["pushers"]) == 1
    resp = await client.http.get(f"{url.path}?{url.query}")
    assert resp.status_code == 200 and "no longer receive" in resp.text
    assert (await alice.ok("GET", f"{V3}/pushers"))["pushers"] == []
    missing = await client.get(url.path)
    assert missing.status_code == 400


async def test_no_email_when_read_in_time(client: MatrixClient, hs: Homeserver, smtp: tuple[Inbox, int]) -> None:
    inbox = smtp[0]
    alice, bob, room = await setup(client)
    await bob.send_text(room, "one")
    last = await bob.send_text(room, "two")
    await alice.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{last}", {})
    assert await hs.notifications.email.run_once(now_ms=later()) == 0
    assert inbox.messages == []
    # A later unread message is emailed alone.
    await bob.send_text(room, "three")
    assert await hs.notifications.email.run_once(now_ms=later()) == 1
    [(_, _, msg)] = inbox.messages
    assert msg["Subject"] == "[Parley] 1 unread message in Team room"
    plain, _ = bodies(msg)
    assert ": three" in plain and ": one" not in plain and ": two" not in plain
