"""Account deactivation: the orchestration across services that one request triggers."""

from __future__ import annotations

from homeserver.accounts.service import AccountService
from homeserver.rooms.membership import MembershipService


class DeactivationService:
    def __init__(self, accounts: AccountService, membership: MembershipService) -> None:
        self.accounts = accounts
        self.membership = membership

    async def deactivate(self, user_id: str) -> None:
        """Leave every room, then mark the account deactivated, delete its devices and revoke
        its tokens (one transaction)."""
        await self.membership.leave_all(user_id)
        await self.accounts.deactivate(user_id)
