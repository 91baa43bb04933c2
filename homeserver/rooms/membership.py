"""Membership changes as clients ask for them: each request's preconditions (the spec's
"Room membership" endpoints), then the event through RoomService.update_membership."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeserver.protocol.errors import MatrixError
from homeserver.rooms.service import RoomService
from homeserver.storage.stores import Stores

# Moderation action -> (membership it sets, memberships the target must have now; None: any).
MODERATION: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "kick": ("leave", ("join", "invite", "knock")),
    "ban": ("ban", None),
    "unban": ("leave", ("ban",)),
}


class MembershipService:
    def __init__(self, stores: Stores, rooms: RoomService) -> None:
        self.stores = stores
        self.rooms = rooms
        #: Rejecting an invite or retracting a knock in a room this server is not in: handled
        #: through a server of the room (True) or not a remote case (False).
        self.remote_leave: Callable[[str, str, str | None], Awaitable[bool]] | None = None

    async def joined_rooms(self, user_id: str) -> list[str]:
        rooms = await self.stores.state.rooms_for_user(user_id)
        return sorted(r for r, (m, _, _) in rooms.items() if m == "join")

    async def invite(self, sender: str, room_id: str, target: str, reason: str | None = None,
                     is_direct: bool = False) -> None:
        """Invite `target`; inviting someone already invited changes nothing (once the sender
        has been checked as one who may invite: see RoomService.invite)."""
        extra = {"is_direct": True} if is_direct else {}
        await self.rooms.invite(sender, room_id, target, reason, extra)

    async def leave(self, user_id: str, room_id: str, reason: str | None = None) -> None:
        current = await self.stores.state.membership(room_id, user_id)
        if current is None or current[0] == "leave":
            await self.rooms.version_of(room_id)  # 404 for an unknown room
            raise MatrixError(403, "M_FORBIDDEN", "You are not in this room")
        if current[0] == "ban":
            raise MatrixError(403, "M_FORBIDDEN", "You are banned from this room")
        if current[0] in ("invite", "knock") and self.remote_leave is not None \
                and await self.remote_leave(user_id, room_id, reason):
            return
        await self.rooms.update_membership(user_id, room_id, user_id, "leave", reason)

    async def moderate(self, action: str, sender: str, room_id: str, target: str,
                       reason: str | None = None) -> None:
        """`kick`, `ban` or `unban` `target` (power levels are checked by the auth rules)."""
        membership, require_current = MODERATION[action]
        if require_current is not None:
            current = await self.stores.state.membership(room_id, target)
            if current is None or current[0] not in require_current:
                await self.rooms.version_of(room_id)  # 404 for an unknown room
                raise MatrixError(403, "M_FORBIDDEN", f"The user is not {'/'.join(require_current)} in this room")
        await self.rooms.update_membership(sender, room_id, target, membership, reason)

    async def leave_all(self, user_id: str) -> None:
        """Leave (or reject) every room the user is joined to, invited to or knocking on;
        a room that refuses the leave is skipped."""
        rooms = await self.stores.state.rooms_for_user(user_id)
        for room_id, (membership, _, _) in rooms.items():
            if membership in ("join", "invite", "knock"):
                try:
                    await self.rooms.update_membership(user_id, room_id, user_id, "leave")
                except MatrixError:
                    pass
