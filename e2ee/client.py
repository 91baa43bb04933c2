"""The HTTP side of the machine: a small async Matrix client for bots, plugins and tests that
sends and reads encrypted room messages. Any Matrix homeserver works (Parley or Synapse)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import httpx

from e2ee.machine import MEGOLM, DecryptionError, OlmMachine

V3 = "/_matrix/client/v3"


class E2EEClient:
    def __init__(self, http: httpx.AsyncClient, token: str, machine: OlmMachine) -> None:
        self.http, self.token, self.machine = http, token, machine
        self.since: str | None = None
        self.encryption: dict[str, dict[str, Any]] = {}  # room -> m.room.encryption content
        # events whose room key had not arrived yet: tried again after each sync
        self.waiting_for_keys: list[tuple[str, dict[str, Any]]] = []

    async def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        resp = await self.http.request(method, path, json=body, params=params,
                                       headers={"Authorization": f"Bearer {self.token}"})
        if resp.status_code != 200:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text}")
        return resp.json()

    async def upload_keys(self) -> None:
        body = self.machine.keys_upload_body()
        if body is not None:
            self.machine.keys_uploaded(await self._call("POST", f"{V3}/keys/upload", body))

    async def sync(self, timeout_ms: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One /sync: feeds the machine (device lists, key counts, to-device), uploads keys when
        the server runs low; returns the response and the decrypted to-device events."""
        params: dict[str, Any] = {"timeout": timeout_ms}
        if self.since:
            params["since"] = self.since
        resp = await self._call("GET", f"{V3}/sync", params=params)
        self.since = resp["next_batch"]
        for room_id, room in (resp.get("rooms") or {}).get("join", {}).items():
            for ev in (room.get("state") or {}).get("events", []) + (room.get("timeline") or {}).get("events", []):
                if ev.get("type") == "m.room.encryption" and ev.get("state_key") == "":
                    self.encryption[room_id] = ev.get("content", {})
                if ev.get("type") == "m.room.member" and ev.get("content", {}).get("membership") in ("leave", "ban"):
                    self.machine.membership_changed(room_id)
        to_device = self.machine.receive_sync(resp)
        await self.upload_keys()
        return resp, to_device

    async def joined_members(self, room_id: str) -> list[str]:
        got = await self._call("GET", f"{V3}/rooms/{quote(room_id)}/joined_members")
        return sorted(got.get("joined", {}))

    async def prepare_room(self, room_id: str) -> None:
        """Make sure every current member's device has the room's outbound session."""
        members = await self.joined_members(room_id)
        self.machine.track_users(members)
        query = self.machine.keys_query_body()
        if query is not None:
            self.machine.keys_queried(await self._call("POST", f"{V3}/keys/query", query))
        claim = self.machine.keys_claim_body(members)
        if claim is not None:
            self.machine.keys_claimed(await self._call("POST", f"{V3}/keys/claim", claim))
        messages = self.machine.room_key_needs_sharing(room_id, members, self.encryption.get(room_id))
        if messages:
            await self._call("PUT", f"{V3}/sendToDevice/m.room.encrypted/{secrets.token_hex(8)}",
                             {"messages": messages})

    async def send_encrypted(self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        await self.prepare_room(room_id)
        encrypted = self.machine.encrypt(room_id, event_type, content)
        got = await self._call("PUT", f"{V3}/rooms/{quote(room_id)}/send/m.room.encrypted/{secrets.token_hex(8)}",
                               encrypted)
        return str(got["event_id"])

    async def enable_encryption(self, room_id: str) -> None:
        content = {"algorithm": MEGOLM}
        await self._call("PUT", f"{V3}/rooms/{quote(room_id)}/state/m.room.encryption/", content)
        self.encryption[room_id] = content

    def decrypt_timeline(self, room_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The timeline with encrypted events replaced by their plaintext form (type, content,
        sender, event_id); events that cannot be decrypted carry `"undecryptable": reason`."""
        out = []
        for ev in events:
            if ev.get("type") != "m.room.encrypted":
                out.append(ev)
                continue
            try:
                clear = self.machine.decrypt(ev, room_id)
                out.append({**ev, "type": clear["type"], "content": clear["content"], "encrypted": True})
            except DecryptionError as e:
                out.append({**ev, "undecryptable": str(e)})
                if "unknown Megolm session" in str(e):
                    self.waiting_for_keys.append((room_id, ev))
        return out

    def retry_waiting(self) -> list[tuple[str, dict[str, Any]]]:
        """(room, decrypted event) for the waiting events whose room key has arrived since (the
        key's to-device message can come in a later sync than the event)."""
        waiting, self.waiting_for_keys = self.waiting_for_keys, []
        done = []
        for room_id, ev in waiting:
            got = self.decrypt_timeline(room_id, [ev])[0]
            if got.get("encrypted"):
                done.append((room_id, got))
        return done
