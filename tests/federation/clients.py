"""Client-API helpers shared by the federation scenario tests: a registered user on a peer
(send, read the timeline, long-poll /sync, read the room's state) and polling with a deadline."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from tests.federation.peers import Peer

V3 = "/_matrix/client/v3"
DEADLINE_S = 60.0


class User:
    def __init__(self, peer: Peer, name: str | None = None) -> None:
        self.peer = peer
        body = {"username": name or f"u{secrets.token_hex(4)}", "password": "correct horse battery",
                "auth": {"type": "m.login.dummy"}}
        resp = httpx.post(f"{peer.client_base}{V3}/register", json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        self.user_id: str = resp.json()["user_id"]
        self.token: str = resp.json()["access_token"]
        self.since: str | None = None

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = httpx.request(method, f"{self.peer.client_base}{V3}{path}", json=body, params=params or None,
                             headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        assert resp.status_code == 200, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def send(self, room: str, body: str) -> str:
        return str(self.call("PUT", f"/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(8)}",
                             {"msgtype": "m.text", "body": body})["event_id"])

    def put_state(self, room: str, event_type: str, content: dict[str, Any], state_key: str = "") -> str:
        return str(self.call("PUT", f"/rooms/{quote(room)}/state/{event_type}/{quote(state_key)}",
                             content)["event_id"])

    def bodies(self, room: str) -> list[str]:
        """The room's message bodies, oldest first, as this user's server shows them."""
        chunk = self.call("GET", f"/rooms/{quote(room)}/messages", dir="b", limit=500)["chunk"]
        return [e["content"]["body"] for e in reversed(chunk)
                if e["type"] == "m.room.message" and "body" in e.get("content", {})]

    def state_ids(self, room: str) -> dict[tuple[str, str], str]:
        """The room's current state on this user's server: (type, state_key) -> event ID."""
        return {(e["type"], e["state_key"]): e["event_id"] for e in self.call("GET", f"/rooms/{quote(room)}/state")}

    def membership(self, room: str, user_id: str) -> str | None:
        members = self.call("GET", f"/rooms/{quote(room)}/members")["chunk"]
        got = [m["content"]["membership"] for m in members if m["state_key"] == user_id]
        return str(got[0]) if got else None

    def sync_until(self, what: str, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Long-poll /sync until a response satisfies `found` (each response is looked at once)."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            params: dict[str, Any] = {"timeout": 2000}
            if self.since:
                params["since"] = self.since
            got = self.call("GET", "/sync", **params)
            self.since = got["next_batch"]
            if found(got):
                return dict(got)
        raise AssertionError(f"{self.user_id} never saw {what}")


def wait_for(what: str, cond: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling a remote server's state, with a deadline


def same_state(a: User, b: User, room: str) -> bool:
    """Both servers show the same current state of the room (the same event IDs)."""
    return a.state_ids(room) == b.state_ids(room)
