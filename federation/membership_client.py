"""Outbound membership requests to a resident server (server-server API "Joining Rooms",
"Leaving Rooms (Rejecting Invites)", "Inviting to a room", and backfill): the calls
homeserver/rooms/remote_membership.py makes, over the signed federation client."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from federation.client import FederationClient

FED = "/_matrix/federation/v1"
FED2 = "/_matrix/federation/v2"
#: A send_join answer carries the room's whole state and auth chain.
JOIN_TIMEOUT_S = 120.0


def _q(s: str) -> str:
    return quote(s, safe="")


class FederationMembershipClient:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def make_join(self, destination: str, room_id: str, user_id: str,
                        versions: list[str]) -> dict[str, Any]:
        return await self._client.get_json(destination, f"{FED}/make_join/{_q(room_id)}/{_q(user_id)}",
                                           {"ver": versions})

    async def send_join(self, destination: str, room_id: str, event_id: str,
                        pdu: dict[str, Any]) -> dict[str, Any]:
        return await self._client.request("PUT", destination, f"{FED2}/send_join/{_q(room_id)}/{_q(event_id)}",
                                          None, pdu, idempotent=True, timeout_s=JOIN_TIMEOUT_S)

    async def make_leave(self, destination: str, room_id: str, user_id: str) -> dict[str, Any]:
        return await self._client.get_json(destination, f"{FED}/make_leave/{_q(room_id)}/{_q(user_id)}")

    async def send_leave(self, destination: str, room_id: str, event_id: str, pdu: dict[str, Any]) -> None:
        await self._client.put_json(destination, f"{FED2}/send_leave/{_q(room_id)}/{_q(event_id)}", pdu)

    async def make_knock(self, destination: str, room_id: str, user_id: str,
                         versions: list[str]) -> dict[str, Any]:
        return await self._client.get_json(destination, f"{FED}/make_knock/{_q(room_id)}/{_q(user_id)}",
                                           {"ver": versions})

    async def send_knock(self, destination: str, room_id: str, event_id: str,
                         pdu: dict[str, Any]) -> dict[str, Any]:
        return await self._client.put_json(destination, f"{FED}/send_knock/{_q(room_id)}/{_q(event_id)}", pdu)

    async def invite(self, destination: str, room_id: str, event_id: str, room_version: str,
                     pdu: dict[str, Any], invite_room_state: list[dict[str, Any]]) -> dict[str, Any]:
        """The invitee's server countersigns the invite: its answer's `event`."""
        return await self._client.put_json(
            destination, f"{FED2}/invite/{_q(room_id)}/{_q(event_id)}",
            {"room_version": room_version, "event": pdu, "invite_room_state": invite_room_state})

    async def backfill(self, destination: str, room_id: str, from_ids: list[str], limit: int) -> list[dict[str, Any]]:
        resp = await self._client.get_json(destination, f"{FED}/backfill/{_q(room_id)}",
                                           {"v": from_ids, "limit": str(limit)})
        pdus = resp.get("pdus")
        return [p for p in pdus if isinstance(p, dict)] if isinstance(pdus, list) else []
