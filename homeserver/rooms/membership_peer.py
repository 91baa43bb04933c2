"""What a resident server is to a server joining, leaving or knocking (`MembershipPeer`, spoken
by federation/membership_client.py) and how its answers are read defensively: a bad answer is
the remote server's error, never ours."""

from __future__ import annotations

from typing import Any, Protocol

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import compute_event_id
from homeserver.protocol.ids import is_valid_user_id
from homeserver.protocol.room_versions import RoomVersion

#: Answers from a resident server that no other server of the room would answer differently.
REFUSALS = ("M_FORBIDDEN", "M_INCOMPATIBLE_ROOM_VERSION", "M_UNSUPPORTED_ROOM_VERSION")


class MembershipPeer(Protocol):
    async def make_join(self, destination: str, room_id: str, user_id: str,
                        versions: list[str]) -> dict[str, Any]: ...

    async def send_join(self, destination: str, room_id: str, event_id: str,
                        pdu: dict[str, Any]) -> dict[str, Any]: ...

    async def make_leave(self, destination: str, room_id: str, user_id: str) -> dict[str, Any]: ...

    async def send_leave(self, destination: str, room_id: str, event_id: str, pdu: dict[str, Any]) -> None: ...

    async def make_knock(self, destination: str, room_id: str, user_id: str,
                         versions: list[str]) -> dict[str, Any]: ...

    async def send_knock(self, destination: str, room_id: str, event_id: str,
                         pdu: dict[str, Any]) -> dict[str, Any]: ...


def event_id_or_none(pdu: Any, rv: RoomVersion) -> str | None:
    if not isinstance(pdu, dict):
        return None
    try:
        return compute_event_id(pdu, rv)
    except (KeyError, TypeError, ValueError, AttributeError, MatrixError):
        return None


def remote_message(e: MatrixError) -> str:
    body = getattr(e, "remote_body", None)
    msg = body.get("error") if isinstance(body, dict) else None
    return f"The room's server refused: {msg}" if isinstance(msg, str) else e.error


def valid_servers(raw: list[str]) -> list[str]:
    """`via`/`server_name` values that are server names (no user IDs or paths)."""
    return [s for s in raw if s and "/" not in s and not is_valid_user_id(s) and len(s) < 256]


def stripped_events(raw: Any) -> list[dict[str, Any]]:
    """The stripped state events (type, state_key, sender, content) among what a server sent
    along with an invite or knock; anything else is left out."""
    out: list[dict[str, Any]] = []
    for e in raw if isinstance(raw, list) else []:
        if isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("state_key"), str) \
                and isinstance(e.get("sender"), str) and isinstance(e.get("content"), dict):
            out.append({k: e[k] for k in ("type", "state_key", "sender", "content")})
    return out[:50]
