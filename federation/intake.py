"""The receiver's two outside needs, answered over federation: verify keys of the servers that
signed an event (through the key fetcher, which checks and caches them), and the events a gap
needs, fetched from the server that sent us the event (`/event`, `/get_missing_events`,
`/state_ids`)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from federation.client import FederationClient
from federation.keys import KeyFetcher
from homeserver.protocol.errors import MatrixError

log = logging.getLogger("parley.federation")
FED = "/_matrix/federation/v1"


class FederationKeySource:
    def __init__(self, keys: KeyFetcher) -> None:
        self._keys = keys

    async def verify_keys(self, server: str, key_ids: list[str], valid_at_ts: int) -> dict[str, str]:
        out: dict[str, str] = {}
        for kid in key_ids:
            try:
                out[kid] = await self._keys.verify_key(server, kid, valid_at_ts)
            except MatrixError as e:
                log.info("no usable key %s of %s: %s", kid, server, e.error)
        return out


class FederationEventSource:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def get_event(self, origin: str, event_id: str) -> dict[str, Any] | None:
        try:
            resp = await self._client.get_json(origin, f"{FED}/event/{quote(event_id, safe='')}")
        except MatrixError as e:
            log.info("could not fetch %s from %s: %s", event_id, origin, e.error)
            return None
        pdus = resp.get("pdus") if isinstance(resp, dict) else None
        return pdus[0] if isinstance(pdus, list) and pdus and isinstance(pdus[0], dict) else None

    async def get_missing_events(self, origin: str, room_id: str, earliest: list[str],
                                 latest: list[str], limit: int) -> list[dict[str, Any]]:
        resp = await self._client.post_json(
            origin, f"{FED}/get_missing_events/{quote(room_id, safe='')}",
            {"earliest_events": earliest, "latest_events": latest, "limit": limit, "min_depth": 0})
        events = resp.get("events") if isinstance(resp, dict) else None
        return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []

    async def get_state_ids(self, origin: str, room_id: str, event_id: str) -> list[str]:
        resp = await self._client.get_json(origin, f"{FED}/state_ids/{quote(room_id, safe='')}",
                                           {"event_id": event_id})
        ids = resp.get("pdu_ids") if isinstance(resp, dict) else None
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
