"""Keeping the full-text index in step with the event graph, inside the transaction that
writes each event: a searchable event is indexed, an edit (`m.replace` by the original sender)
replaces its target's text with `m.new_content`, a redaction removes the event. Encrypted
events carry no searchable text and are never indexed; neither are outliers, rejected or
soft-failed events (they are not part of the room's history as clients see it).
"""

from __future__ import annotations

from homeserver.protocol.search import edit_target, edit_text, searchable
from homeserver.storage.database import Conn
from homeserver.storage.events import StoredEvent
from homeserver.storage.search import IndexRow
from homeserver.storage.stores import Stores


async def index_event(stores: Stores, c: Conn, ev: StoredEvent) -> None:
    if not ev.in_timeline:
        return
    content = ev.pdu.get("content")
    if ev.type == "m.room.message" and isinstance(content, dict):
        target = edit_target(content)
        if target is not None:
            text = edit_text(content)
            held = await stores.search.indexed(c, target) if text is not None else None
            if text is not None and held is not None and held[0] == ev.sender:
                await stores.search.set_value(c, target, text)
            return
    found = searchable(ev.type, content)
    if found is not None:
        key, value = found
        await stores.search.index(c, IndexRow(ev.event_id, ev.room_id, ev.sender, ev.type, key, value,
                                              ev.stream_ordering, ev.origin_server_ts))


async def event_redacted(stores: Stores, c: Conn, target_id: str) -> None:
    """The redacted event leaves the index; a redacted edit gives its target back its own text."""
    await stores.search.remove(c, target_id)
    target = await stores.events.get(target_id)
    content = target.pdu.get("content") if target is not None else None
    edited = edit_target(content) if isinstance(content, dict) and target is not None \
        and target.type == "m.room.message" else None
    if edited is None or target is None:
        return
    held = await stores.search.indexed(c, edited)
    original = await stores.events.get(edited)
    if held is None or original is None or held[0] != target.sender:
        return
    found = searchable(original.type, original.pdu.get("content"))
    if found is not None:
        await stores.search.set_value(c, edited, found[1])
