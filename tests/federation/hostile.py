"""A small hostile homeserver living in the test process: its own signing key, served over TLS
at `/_matrix/key/v2/server` (so Parley fetches and checks it like any peer's), and signed
requests to Parley's federation listener built with the repository's own signing code. It joins
rooms through make_join/send_join like a real server, then sends whatever a test asks of it.

Everything else a server is asked (get_missing_events, state_ids, /event) answers 404, and the
transactions Parley sends it are accepted and recorded.
"""

from __future__ import annotations

import http.server
import secrets
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from federation.request_auth import authorization_header
from homeserver.protocol.auth_rules import auth_types_for_event
from homeserver.protocol.events import compute_event_id, hash_and_sign_event
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import SigningKey, generate_signing_key, key_id, sign_json, verify_key_b64
from tests.federation.peers import Peer, TestCA

FED = "/_matrix/federation/v1"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _answer(self, status: int, body: Any) -> None:
        raw = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self.server.owner.requests.append(("GET", self.path))
        if self.path.split("?")[0] == "/_matrix/key/v2/server":
            self._answer(200, self.server.owner.key_document())
        else:
            self._answer(404, {"errcode": "M_NOT_FOUND", "error": "nothing here"})

    def _read(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return orjson.loads(self.rfile.read(n)) if n else None

    def do_PUT(self) -> None:
        self.server.owner.requests.append(("PUT", self.path))
        body = self._read()
        owner = self.server.owner
        if self.path.startswith(f"{FED}/send/") and isinstance(body, dict):
            owner.received.extend(p for p in body.get("pdus", []) if isinstance(p, dict))
            self._answer(200, {"pdus": {}})
        elif self.path.startswith("/_matrix/federation/v2/invite/") and isinstance(body, dict):
            owner.invite_arrived.set()
            owner.release_invites.wait(120)  # a slow invitee server, until the test lets it answer
            rv = KNOWN_ROOM_VERSIONS[body["room_version"]]
            event = body["event"]
            event["signatures"] = sign_json(redact(event, rv), owner.server_name, owner.key)["signatures"]
            self._answer(200, {"event": event})
        else:
            self._answer(404, {"errcode": "M_NOT_FOUND", "error": "nothing here"})

    def do_POST(self) -> None:
        self.server.owner.requests.append(("POST", self.path))
        self._read()
        self._answer(404, {"errcode": "M_NOT_FOUND", "error": "nothing here"})


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: HostileServer


class HostileServer:
    """Serves its keys on localhost:<port> (the test CA's leaf names localhost) and talks to one
    Parley. `rooms[room_id]` is what it learnt at its join: the state and its latest event."""

    def __init__(self, tls: TestCA, target: Peer) -> None:
        self.key: SigningKey = generate_signing_key(f"h{secrets.token_hex(3)}")
        self._httpd = _TLSServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.server_name = f"localhost:{self._httpd.server_address[1]}"
        self.target = target
        self.requests: list[tuple[str, str]] = []
        self.received: list[dict[str, Any]] = []
        self.rooms: dict[str, dict[str, Any]] = {}
        #: Invites are answered (countersigned) only once this is set.
        self.release_invites = threading.Event()
        self.release_invites.set()
        self.invite_arrived = threading.Event()
        self._client = httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_file)), timeout=60)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release_invites.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._client.close()

    def user(self, local: str) -> str:
        return f"@{local}:{self.server_name}"

    def key_document(self) -> dict[str, Any]:
        doc = {"server_name": self.server_name, "old_verify_keys": {},
               "verify_keys": {key_id(self.key): {"key": verify_key_b64(self.key)}},
               "valid_until_ts": int(time.time() * 1000) + 86_400_000}
        return sign_json(doc, self.server_name, self.key)

    # ------------------------------------------------------------------ requests to Parley

    def request(self, method: str, path: str, content: Any = None, *, origin: str | None = None,
                destination: str | None = None, key: SigningKey | None = None,
                raw: bytes | None = None) -> httpx.Response:
        """A request to Parley's federation listener, signed as `origin` (default: us) with `key`."""
        header = authorization_header(key or self.key, origin or self.server_name,
                                      destination or self.target.server_name, method, path, content)
        headers = {"Authorization": header}
        if raw is not None:
            headers["Content-Type"] = "application/json"
            return self._client.request(method, f"https://{self.target.server_name}{path}", content=raw,
                                        headers=headers)
        return self._client.request(method, f"https://{self.target.server_name}{path}",
                                    json=content, headers=headers)

    def send_txn(self, pdus: list[dict[str, Any]], edus: list[dict[str, Any]] | None = None,
                 txn_id: str | None = None, origin: str | None = None) -> httpx.Response:
        body = {"origin": origin or self.server_name, "origin_server_ts": int(time.time() * 1000),
                "pdus": pdus, "edus": edus or []}
        return self.request("PUT", f"{FED}/send/{txn_id or secrets.token_hex(8)}", body)

    # ------------------------------------------------------------------ events

    def join(self, room_id: str, local: str = "mallory") -> str:
        user = self.user(local)
        resp = self.request("GET", f"{FED}/make_join/{quote(room_id, safe='')}/{quote(user, safe='')}"
                                   "?ver=10&ver=11&ver=12")
        assert resp.status_code == 200, resp.text
        rv = KNOWN_ROOM_VERSIONS[resp.json()["room_version"]]
        event = resp.json()["event"] | {"origin_server_ts": int(time.time() * 1000)}
        event.pop("origin", None)
        signed = hash_and_sign_event(event, self.server_name, self.key, rv)
        event_id = compute_event_id(signed, rv)
        resp = self.request("PUT", f"/_matrix/federation/v2/send_join/{quote(room_id, safe='')}/"
                                   f"{quote(event_id, safe='')}", signed)
        assert resp.status_code == 200, resp.text
        state = {(e["type"], e["state_key"]): compute_event_id(e, rv) for e in resp.json()["state"]}
        state[("m.room.member", user)] = event_id
        self.rooms[room_id] = {"rv": rv, "state": state, "latest": event_id, "depth": signed["depth"]}
        return event_id

    def event(self, room_id: str, event_type: str, content: dict[str, Any], *, sender: str | None = None,
              state_key: str | None = None, prev_events: list[str] | None = None, depth: int | None = None,
              key: SigningKey | None = None) -> tuple[str, dict[str, Any]]:
        """A signed PDU in a room we joined, on our latest event unless told otherwise; `key`
        signs instead of ours (under our key ID: a forgery)."""
        room = self.rooms[room_id]
        rv: RoomVersion = room["rv"]
        ev: dict[str, Any] = {"room_id": room_id, "type": event_type, "sender": sender or self.user("mallory"),
                              "content": content, "origin_server_ts": int(time.time() * 1000),
                              "prev_events": prev_events if prev_events is not None else [room["latest"]],
                              "depth": depth if depth is not None else min(room["depth"] + 1, 2**53 - 1)}
        if state_key is not None:
            ev["state_key"] = state_key
        ev["auth_events"] = [room["state"][k] for k in auth_types_for_event(rv, ev) if k in room["state"]]
        signed = hash_and_sign_event(ev, self.server_name, self.key, rv)
        if key is not None:
            forged = hash_and_sign_event(ev, self.server_name, key, rv)
            signed["signatures"] = {self.server_name: {key_id(self.key): forged["signatures"][self.server_name][
                key_id(key)]}}
        return compute_event_id(signed, rv), signed

    def accepted(self, room_id: str, event_id: str, pdu: dict[str, Any]) -> None:
        """Build on this event from now on (Parley took it in)."""
        room = self.rooms[room_id]
        room["latest"], room["depth"] = event_id, pdu["depth"]
        if "state_key" in pdu:
            room["state"][(pdu["type"], pdu["state_key"])] = event_id
