"""Notification emails over STARTTLS and implicit TLS to aiosmtpd on loopback, with the
server's self-signed certificate trusted through email.ca_file (and refused without it)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from homeserver.app import Homeserver
from homeserver.config_push import EmailConfig
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "smtp.crt", tmp / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TLSInbox:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], bool]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        encrypted = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        self.received.append((list(envelope.rcpt_tos), encrypted))
        return "250 OK"


@pytest.fixture(params=["starttls", "tls"])
async def tls_smtp(request: Any, tmp_path: Path) -> AsyncIterator[tuple[TLSInbox, EmailConfig]]:
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = TLSInbox()
    loop = asyncio.get_running_loop()
    if request.param == "starttls":
        server = await loop.create_server(lambda: SMTP(inbox, require_starttls=True, tls_context=ctx),
                                          "127.0.0.1", 0)
    else:
        server = await loop.create_server(lambda: SMTP(inbox), "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    cfg = EmailConfig(enabled=True, smtp_host="127.0.0.1", smtp_port=port, ca_file=str(cert),
                      require_starttls=request.param == "starttls", force_tls=request.param == "tls",
                      notif_from="Parley <notify@test.parley>", notif_delay_ms=60_000)
    try:
        yield inbox, cfg
    finally:
        server.close()


@pytest.fixture
def config_overrides(tls_smtp: tuple[TLSInbox, EmailConfig]) -> dict[str, Any]:
    return {"email": tls_smtp[1]}


async def test_email_over_tls(client: MatrixClient, hs: Homeserver, tls_smtp: tuple[TLSInbox, EmailConfig]) -> None:
    inbox, cfg = tls_smtp
    alice, bob = await client.register("alice"), await client.register()
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}")
    await alice.ok("POST", f"{V3}/pushers/set", {
        "kind": "email", "app_id": "m.email", "pushkey": "alice@example.org", "app_display_name": "Email",
        "device_display_name": "alice@example.org", "lang": "en", "data": {}})
    await bob.send_text(room, "over an encrypted connection")
    later = int(time.time() * 1000) + 65_000
    # Without the trust anchor the certificate is refused and nothing is sent (nor marked sent).
    hs.notifications.email.config = replace(cfg, ca_file=None)
    assert await hs.notifications.email.run_once(now_ms=later) == 0
    assert inbox.received == []
    hs.notifications.email.config = cfg
    assert await hs.notifications.email.run_once(now_ms=later) == 1
    assert inbox.received == [(["alice@example.org"], True)]
