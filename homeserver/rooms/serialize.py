"""Stored events -> the client event format (redactions applied, unsigned data attached)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from homeserver.protocol.events import client_event
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores


class EventSerializer:
    def __init__(self, stores: Stores) -> None:
        self.events = stores.events
        self._userdata = stores.userdata
        self._versions: dict[str, RoomVersion] = {}

    async def room_version(self, room_id: str) -> RoomVersion | None:
        rv = self._versions.get(room_id)
        if rv is None:
            ver = await self._userdata.room_version(room_id)
            if ver is None or ver not in KNOWN_ROOM_VERSIONS:
                return None
            rv = self._versions[room_id] = KNOWN_ROOM_VERSIONS[ver]
        return rv

    def _rv(self, ev: StoredEvent) -> RoomVersion:
        return self._versions.get(ev.room_id) or KNOWN_ROOM_VERSIONS["12"]

    async def serialize(
        self, evs: Iterable[StoredEvent], device: tuple[str, str] | None = None,
        now: int | None = None, format_: str = "client",
    ) -> list[dict[str, Any]]:
        evs = list(evs)
        now = now if now is not None else int(time.time() * 1000)
        redaction_ids = [e.redacted_by for e in evs if e.redacted_by]
        redactions = await self.events.get_many(redaction_ids) if redaction_ids else {}
        for rid in {e.room_id for e in evs if e.redacted_by}:
            await self.room_version(rid)
        out = []
        for ev in evs:
            one = self._one(ev, device, now, redactions)
            if format_ == "federation":
                one = self._federation(ev, one)
            out.append(one)
        return out

    def _federation(self, ev: StoredEvent, client: dict[str, Any]) -> dict[str, Any]:
        """The event as a PDU (a filter's `event_format: federation`), redactions applied."""
        pdu = dict(redact(ev.pdu, self._rv(ev)) if ev.redacted_by else ev.pdu)
        pdu["unsigned"] = client.get("unsigned", {})
        pdu.setdefault("room_id", ev.room_id)
        pdu["event_id"] = ev.event_id
        return pdu

    def _one(
        self, ev: StoredEvent, device: tuple[str, str] | None, now: int,
        redactions: dict[str, StoredEvent],
    ) -> dict[str, Any]:
        pdu = ev.pdu
        stored_unsigned = pdu.get("unsigned") or {}
        unsigned: dict[str, Any] = {"age": max(0, now - ev.origin_server_ts)}
        for k in ("prev_content", "replaces_state", "prev_sender"):
            if k in stored_unsigned:
                unsigned[k] = stored_unsigned[k]
        if ev.redacted_by:
            pdu = redact(pdu, self._rv(ev))
            red = redactions.get(ev.redacted_by)
            if red is not None:
                unsigned["redacted_because"] = self._one(red, None, now, {})
        if device is not None and ev.txn_id and ev.sender == device[0] and ev.txn_device == device[1]:
            unsigned["transaction_id"] = ev.txn_id
        out = client_event(pdu, ev.event_id, unsigned=unsigned)
        out["room_id"] = ev.room_id  # v12 create events carry none in the PDU
        return out


def project_fields(event: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Keep only the filter's `event_fields` (dotted paths; `\\.` is a literal dot)."""
    out: dict[str, Any] = {}
    for field in fields:
        path = [p.replace("\x00", ".") for p in field.replace("\\.", "\x00").split(".")]
        src: Any = event
        for part in path:
            if not isinstance(src, dict) or part not in src:
                break
            src = src[part]
        else:
            dst = out
            for part in path[:-1]:
                dst = dst.setdefault(part, {})
            dst[path[-1]] = src
    return out


def stripped_state(ev: StoredEvent) -> dict[str, Any]:
    return {
        "type": ev.type,
        "state_key": ev.state_key,
        "sender": ev.sender,
        "content": ev.pdu.get("content", {}),
    }
