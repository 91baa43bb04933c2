"""An in-memory remote server for the outbound federation tests: it serves its signing key and
records the transactions `PUT /_matrix/federation/v1/send/{txnId}` brings (answering as the
real API does), failing on request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import orjson

from federation.keys import local_key_response
from homeserver.app import Homeserver
from homeserver.peering.wiring import wire_transactions
from homeserver.protocol.signing import SigningKey
from tests.api.test_federation_api import REMOTE, REMOTE_KEY, use_transport
from tests.api.test_federation_events import _rewire

SEND = "/_matrix/federation/v1/send/"


@dataclass
class Attempt:
    txn_id: str
    body: dict[str, Any]
    at: float
    answered: int
    authorization: str


@dataclass
class RemotePeer:
    fail: int = 0  # answer this many transactions with `fail_status`
    fail_status: int = 500
    attempts: list[Attempt] = field(default_factory=list)
    name: str = REMOTE
    #: further servers whose keys this transport serves (server name -> signing key)
    others: dict[str, SigningKey] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.headers["host"]
        if host == self.name and request.url.path == "/_matrix/key/v2/server":
            return httpx.Response(200, json=local_key_response(REMOTE, REMOTE_KEY, [], int(time.time() * 1000)))
        if host in self.others and request.url.path == "/_matrix/key/v2/server":
            return httpx.Response(200, json=local_key_response(host, self.others[host], [],
                                                               int(time.time() * 1000)))
        if host == self.name and request.method == "PUT" and request.url.path.startswith(SEND):
            txn_id = unquote(request.url.raw_path.decode().split("?")[0][len(SEND):])
            status = 200
            if self.fail > 0:
                self.fail -= 1
                status = self.fail_status
            self.attempts.append(Attempt(txn_id, orjson.loads(request.content), time.monotonic(), status,
                                         request.headers.get("authorization", "")))
            if status != 200:
                return httpx.Response(status, json={"errcode": "M_UNKNOWN", "error": "not now"})
            return httpx.Response(200, json={"pdus": {}})
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})

    @property
    def delivered(self) -> list[Attempt]:
        return [a for a in self.attempts if a.answered == 200]

    def pdu_bodies(self) -> list[str]:
        return [p["content"].get("body") for a in self.delivered for p in a.body["pdus"]
                if p["type"] == "m.room.message"]

    def edus(self, edu_type: str) -> list[dict[str, Any]]:
        return [e["content"] for a in self.delivered for e in a.body["edus"] if e["edu_type"] == edu_type]


def attach(hs: Homeserver, peer: RemotePeer) -> None:
    """Point the homeserver's federation client at the in-memory peer (and rebuild what holds it)."""
    use_transport(hs, peer)
    _rewire(hs)
    wire_transactions(hs)


async def queue_drained(hs: Homeserver, timeout: float = 15.0) -> None:
    """Wait until no destination has anything queued or in flight."""
    deadline = time.monotonic() + timeout
    while await hs.stores.federation_queue.destinations_with_work():
        if time.monotonic() > deadline:
            raise AssertionError("the federation queue did not drain")
        await asyncio.sleep(0.02)


async def until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `cond` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
