"""What the AI may see of a room: the messages the asking user may read, as plain lines.

Every read goes through the RoomReader (history visibility, membership at the time, ignored
users), one room at a time: a summary never holds pre-join history the user cannot read nor
anything from another room. Encrypted rooms are refused: their text is not the server's to
send anywhere (the web client summarizes them in the browser).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from homeserver.accounts.account_data import AccountDataService
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import RoomEventFilter
from homeserver.rooms.reads import PageToken, RoomReader, parse_page_token
from homeserver.storage.events import StoredEvent

MESSAGE_TYPES = ("m.room.message",)
MAX_MESSAGES = 400
PAGE = 100
MAX_LINE = 2000


@dataclass(frozen=True)
class Line:
    event_id: str
    sender: str
    ts: int
    body: str

    def render(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.ts / 1000))
        return f"[{stamp}] {self.sender}: {self.body}"


def _body(ev: StoredEvent) -> str | None:
    content = ev.pdu.get("content") or {}
    body = content.get("body")
    if ev.redacted_by or not isinstance(body, str) or not body.strip():
        return None
    return body[:MAX_LINE]


def lines_of(evs: list[StoredEvent]) -> list[Line]:
    """Chronological lines; an edit replaces the text of the message it edits."""
    evs = sorted(evs, key=lambda e: e.stream_ordering)
    edits: dict[str, str] = {}
    for ev in evs:
        rel = (ev.pdu.get("content") or {}).get("m.relates_to") or {}
        new = (ev.pdu.get("content") or {}).get("m.new_content") or {}
        if isinstance(rel, dict) and rel.get("rel_type") == "m.replace" and isinstance(new.get("body"), str):
            edits[str(rel.get("event_id"))] = new["body"][:MAX_LINE]
    out = []
    for ev in evs:
        rel = (ev.pdu.get("content") or {}).get("m.relates_to") or {}
        if isinstance(rel, dict) and rel.get("rel_type") == "m.replace":
            continue
        body = _body(ev)
        if body is not None:
            out.append(Line(ev.event_id, ev.sender, ev.origin_server_ts, edits.get(ev.event_id, body)))
    return out


class TranscriptReader:
    def __init__(self, reader: RoomReader, account_data: AccountDataService) -> None:
        self.reader = reader
        self.account_data = account_data

    async def refuse_encrypted(self, user_id: str, room_id: str) -> None:
        try:
            await self.reader.state_event(user_id, room_id, "m.room.encryption", "")
        except MatrixError as e:
            if e.status == 404 and e.errcode == "M_NOT_FOUND":
                return
            raise
        raise MatrixError(403, "ORG.PARLEY.AI_ENCRYPTED_ROOM",
                          "Encrypted rooms are never sent to the server's AI; summarize them in the client")

    async def channel(self, user_id: str, room_id: str, since_ts: int | None = None,
                      after_stream: int | None = None, limit: int = MAX_MESSAGES) -> list[Line]:
        """The newest readable messages (at most `limit`) after a time or a stream position."""
        await self.refuse_encrypted(user_id, room_id)
        flt = RoomEventFilter(types=MESSAGE_TYPES)
        got: list[StoredEvent] = []
        token: PageToken | None = None
        while len(got) < limit:
            evs, end, _ = await self.reader.paginate(user_id, room_id, token, None, True, PAGE, flt)
            stop = False
            for ev in evs:
                if (since_ts is not None and ev.origin_server_ts < since_ts) or \
                        (after_stream is not None and ev.stream_ordering <= after_stream):
                    stop = True
                    break
                got.append(ev)
            if stop or end is None or not evs:
                break
            token = parse_page_token(end)
        return lines_of(got[:limit])

    async def since_read_marker(self, user_id: str, room_id: str) -> list[Line]:
        try:
            marker = (await self.account_data.get(user_id, room_id, "m.fully_read")).get("event_id")
        except MatrixError as e:
            if e.status != 404:
                raise
            marker = None  # nothing read yet: everything readable is unread
        after = None
        if isinstance(marker, str):
            after = (await self.reader.event(user_id, room_id, marker)).stream_ordering
        return await self.channel(user_id, room_id, after_stream=after)

    async def around(self, user_id: str, room_id: str, event_id: str, limit: int = 20) -> tuple[Line, list[Line]]:
        """The event being answered and the readable messages leading up to it."""
        await self.refuse_encrypted(user_id, room_id)
        ev = await self.reader.event(user_id, room_id, event_id)
        target = lines_of([ev])
        if not target:
            raise MatrixError(400, "M_INVALID_PARAM", "That event has no text to answer")
        before, _, _ = await self.reader.paginate(
            user_id, room_id, PageToken(ev.depth, ev.stream_ordering - 1), None, True, limit,
            RoomEventFilter(types=MESSAGE_TYPES))
        return target[0], lines_of(before)

    async def thread(self, user_id: str, room_id: str, root_id: str) -> list[Line]:
        await self.refuse_encrypted(user_id, room_id)
        root = await self.reader.event(user_id, room_id, root_id)
        rel = await self.reader.relations(user_id, room_id, root_id, "m.thread", None, None, None, False,
                                          MAX_MESSAGES, False)
        ids = [e["event_id"] for e in rel["chunk"]]
        evs = [root] + [await self.reader.event(user_id, room_id, i) for i in ids]
        return lines_of(evs)

