"""Email digests for `email` pushers: notifications still unread `notif_delay_ms` after they
happened go out as one message per user per round (plain text and HTML), without message
content for encrypted rooms, with a signed unsubscribe link. Runs on the push-delivery worker.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlencode

import aiosmtplib

from homeserver.config_push import EmailConfig
from homeserver.protocol.errors import MatrixError
from homeserver.push.pushers import EMAIL_APP_ID, KIND_EMAIL
from homeserver.storage.pushers import Pusher
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.push.email")
SECRET_KEY = "email_unsubscribe_secret"
UNSUBSCRIBE_PATH = "_matrix/client/unstable/org.parley.push/unsubscribe"
MAX_PER_DIGEST = 50
SMTP_POLICY = SMTP.clone(max_line_length=998)


class EmailNotifier:
    def __init__(self, stores: Stores, config: EmailConfig, public_baseurl: str) -> None:
        self.stores = stores
        self.config = config
        self.base = public_baseurl if public_baseurl.endswith("/") else public_baseurl + "/"
        self.client_base = config.client_base_url or self.base
        self._secret: bytes | None = None

    async def _key(self) -> bytes:
        if self._secret is None:
            self._secret = (await self.stores.pushers.key(SECRET_KEY, secrets.token_hex(32))).encode()
        return self._secret

    async def unsubscribe_token(self, user_id: str, pushkey: str) -> str:
        return hmac.new(await self._key(), f"{user_id}\x00{pushkey}".encode(), hashlib.sha256).hexdigest()

    async def unsubscribe_url(self, user_id: str, pushkey: str) -> str:
        q = urlencode({"user_id": user_id, "pushkey": pushkey, "token": await self.unsubscribe_token(user_id, pushkey)})
        return f"{self.base}{UNSUBSCRIBE_PATH}?{q}"

    async def unsubscribe(self, user_id: str | None, pushkey: str | None, token: str | None) -> None:
        if not user_id or not pushkey or not token:
            raise MatrixError(400, "M_MISSING_PARAM", "user_id, pushkey and token are required")
        if not hmac.compare_digest(token, await self.unsubscribe_token(user_id, pushkey)):
            raise MatrixError(403, "M_FORBIDDEN", "Invalid unsubscribe token")
        await self.stores.pushers.delete(user_id, EMAIL_APP_ID, pushkey)

    async def run_once(self, now_ms: int | None = None) -> int:
        """Email every email pusher whose user has notifications unread for longer than the
        delay; returns the number of emails sent."""
        if not self.config.enabled:
            return 0
        now = int(time.time() * 1000) if now_ms is None else now_ms
        sent = 0
        for p in await self.stores.pushers.of_kind(KIND_EMAIL):
            try:
                sent += await self._one(p, now - self.config.notif_delay_ms)
            except Exception:
                log.exception("notification email to %s failed", p.user_id)
        return sent

    async def _one(self, p: Pusher, old_enough: int) -> int:
        st = self.stores.pushers
        newest = await st.newest_old_enough(p.user_id, p.emailed_stream, old_enough)
        if newest is None:
            return 0
        rows = await st.unread_since(p.user_id, p.emailed_stream, old_enough, MAX_PER_DIGEST)
        if rows:
            await self.send(p, rows)
            if len(rows) == MAX_PER_DIGEST:  # more remain: the next round continues after these
                newest = int(rows[-1]["stream_ordering"])
        await st.set_emailed(p.user_id, p.app_id, p.pushkey, int(newest))
        return 1 if rows else 0

    async def _describe(self, rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
        """room name -> [(sender, text)] in order."""
        evs = await self.stores.events.get_many([r["event_id"] for r in rows])
        rooms: dict[str, list[tuple[str, str]]] = {}
        facts: dict[str, tuple[str, bool]] = {}
        for r in rows:
            ev = evs.get(r["event_id"])
            if ev is None:
                continue
            if ev.room_id not in facts:
                ids = await self.stores.state.current_ids(ev.room_id, [("m.room.name", ""), ("m.room.encryption", "")])
                name_ev = await self.stores.events.get(ids[("m.room.name", "")]) if ("m.room.name", "") in ids \
                    else None
                name = name_ev.pdu.get("content", {}).get("name") if name_ev else None
                facts[ev.room_id] = (name if isinstance(name, str) and name else ev.room_id,
                                     ("m.room.encryption", "") in ids)
            room_name, encrypted = facts[ev.room_id]
            member = await self.stores.state.current_ids(ev.room_id, [("m.room.member", ev.sender)])
            mev = await self.stores.events.get(next(iter(member.values()))) if member else None
            dn = mev.pdu.get("content", {}).get("displayname") if mev else None
            sender = dn if isinstance(dn, str) and dn else ev.sender
            body = ev.pdu.get("content", {}).get("body")
            if encrypted or ev.type == "m.room.encrypted":
                text = "(encrypted message)"
            elif ev.redacted_by:
                text = "(message deleted)"
            elif ev.type == "m.room.member":
                text = "(invited you)" if ev.pdu.get("content", {}).get("membership") == "invite" else "(membership)"
            else:
                text = body if isinstance(body, str) else f"({ev.type})"
            rooms.setdefault(room_name, []).append((sender, text))
        return rooms

    async def send(self, p: Pusher, rows: list[dict[str, Any]]) -> None:
        rooms = await self._describe(rows)
        count = sum(len(v) for v in rooms.values())
        names = list(rooms)
        where = names[0] if len(names) == 1 else f"{len(names)} rooms"
        subject = f"[{self.config.app_name}] {count} unread message{'s' if count != 1 else ''} in {where}"
        unsub = await self.unsubscribe_url(p.user_id, p.pushkey)
        open_url = self.client_base
        plain = [f"You have {count} unread message{'s' if count != 1 else ''} on {self.config.app_name}.", ""]
        parts = [f"<p>You have {count} unread message{'s' if count != 1 else ''} on "
                 f"{html.escape(self.config.app_name)}.</p>"]
        for room, msgs in rooms.items():
            plain.append(f"{room}:")
            parts.append(f"<h3>{html.escape(room)}</h3><ul>")
            for sender, text in msgs:
                plain.append(f"  {sender}: {text}")
                parts.append(f"<li><b>{html.escape(sender)}</b>: {html.escape(text)}</li>")
            plain.append("")
            parts.append("</ul>")
        plain += [f"Open {self.config.app_name}: {open_url}", "",
                  f"Stop these emails: {unsub}"]
        parts += [f'<p><a href="{html.escape(open_url)}">Open {html.escape(self.config.app_name)}</a></p>',
                  f'<p><small><a href="{html.escape(unsub)}">Unsubscribe</a> from these emails.</small></p>']
        # Long unsubscribe URLs must stay one token (a shorter line limit would encode them).
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = self.config.notif_from
        msg["To"] = formataddr(("", p.pushkey))
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain=self.config.notif_from.rsplit("@", 1)[-1].strip(">") or None)
        msg["List-Unsubscribe"] = f"<{unsub}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content("\n".join(plain))
        msg.add_alternative("<!doctype html><html><body>" + "".join(parts) + "</body></html>", subtype="html")
        c = self.config
        await aiosmtplib.send(
            msg.as_bytes(policy=SMTP_POLICY), sender=parseaddr(c.notif_from)[1], recipients=[p.pushkey],
            hostname=c.smtp_host, port=c.smtp_port, username=c.smtp_user, password=c.smtp_password,
            use_tls=c.force_tls, start_tls=True if c.require_starttls else (False if c.force_tls else None),
            cert_bundle=c.ca_file, timeout=30,
        )

