"""The Olm/Megolm machine on its own (no server): two or three devices pass each other's
request bodies and responses by hand, the way a homeserver would relay them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2ee.machine import DecryptionError, OlmMachine
from e2ee.store import CryptoStore, WrongPassphrase

ROOM = "!dm:example.org"


def _machine(user: str, device: str, path: str = ":memory:", passphrase: str = "pw") -> OlmMachine:
    return OlmMachine(user, device, CryptoStore(path, passphrase, fast_kdf=True))


class Relay:
    """The server's part: key directory, one-time keys handed out once, to-device inboxes."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.otks: dict[tuple[str, str], dict[str, Any]] = {}
        self.fallbacks: dict[tuple[str, str], dict[str, Any]] = {}
        self.inbox: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def upload(self, m: OlmMachine) -> None:
        body = m.keys_upload_body()
        assert body is not None
        if "device_keys" in body:
            self.devices.setdefault(m.user_id, {})[m.device_id] = body["device_keys"]
        mine = self.otks.setdefault((m.user_id, m.device_id), {})
        mine.update(body.get("one_time_keys", {}))
        if "fallback_keys" in body:
            self.fallbacks[(m.user_id, m.device_id)] = body["fallback_keys"]
        m.keys_uploaded({"one_time_key_counts": {"signed_curve25519": len(mine)}})

    def query(self, m: OlmMachine) -> None:
        body = m.keys_query_body()
        if body is not None:
            m.keys_queried({"device_keys": {u: self.devices.get(u, {}) for u in body["device_keys"]}})

    def claim(self, m: OlmMachine, users: list[str]) -> None:
        body = m.keys_claim_body(users)
        if body is None:
            return
        out: dict[str, Any] = {}
        for user, devices in body["one_time_keys"].items():
            for device in devices:
                pool = self.otks.get((user, device), {})
                if pool:
                    key_id = sorted(pool)[0]
                    out.setdefault(user, {})[device] = {key_id: pool.pop(key_id)}
                elif (user, device) in self.fallbacks:  # handed out again and again
                    out.setdefault(user, {})[device] = dict(self.fallbacks[(user, device)])
        m.keys_claimed({"one_time_keys": out})

    def send_to_device(self, sender: OlmMachine, messages: dict[str, dict[str, Any]]) -> None:
        for user, devices in messages.items():
            for device, content in devices.items():
                self.inbox.setdefault((user, device), []).append(
                    {"type": "m.room.encrypted", "sender": sender.user_id, "content": content})

    def deliver(self, m: OlmMachine) -> list[dict[str, Any]]:
        events = self.inbox.pop((m.user_id, m.device_id), [])
        return m.receive_sync({"to_device": {"events": events}})


def _send(relay: Relay, sender: OlmMachine, members: list[str], text: str, event_id: str) -> dict[str, Any]:
    sender.track_users(members)
    relay.query(sender)
    relay.claim(sender, members)
    relay.send_to_device(sender, sender.room_key_needs_sharing(ROOM, members))
    content = sender.encrypt(ROOM, "m.room.message", {"msgtype": "m.text", "body": text})
    return {"type": "m.room.encrypted", "event_id": event_id, "origin_server_ts": 1, "sender": sender.user_id,
            "content": content}


def test_encrypted_dm_both_ways_and_late_joiner_cannot_read_history() -> None:
    relay = Relay()
    alice, bob = _machine("@alice:a", "ALICE"), _machine("@bob:b", "BOB")
    relay.upload(alice)
    relay.upload(bob)
    ev1 = _send(relay, alice, ["@alice:a", "@bob:b"], "hi bob", "$1")
    assert "hi bob" not in str(ev1)
    received = relay.deliver(bob)
    assert [e["type"] for e in received] == ["m.room_key"]
    assert bob.decrypt(ev1, ROOM)["content"]["body"] == "hi bob"
    assert alice.decrypt(ev1, ROOM)["content"]["body"] == "hi bob"  # the sender reads its own messages

    ev2 = _send(relay, bob, ["@alice:a", "@bob:b"], "hi alice", "$2")
    relay.deliver(alice)
    assert alice.decrypt(ev2, ROOM)["content"]["body"] == "hi alice"

    # carol joins later: alice rotates for membership changes only when someone leaves, so she
    # gets the *current* session from its current index, never the messages before it
    carol = _machine("@carol:c", "CAROL")
    relay.upload(carol)
    ev3 = _send(relay, alice, ["@alice:a", "@bob:b", "@carol:c"], "welcome carol", "$3")
    relay.deliver(carol)
    relay.deliver(bob)
    assert carol.decrypt(ev3, ROOM)["content"]["body"] == "welcome carol"
    with pytest.raises(DecryptionError):
        carol.decrypt(ev1, ROOM)  # the session was exported at a later index
    with pytest.raises(DecryptionError):
        carol.decrypt(ev2, ROOM)  # bob's session was never shared with carol


def test_fallback_key_opens_sessions_when_one_time_keys_run_out_and_is_replaced() -> None:
    relay = Relay()
    alice, bob, carol = _machine("@alice:a", "A"), _machine("@bob:b", "B"), _machine("@carol:c", "C")
    for m in (alice, bob, carol):
        relay.upload(m)
    (old_id, old_key), = relay.fallbacks[("@bob:b", "B")].items()
    assert old_key["fallback"] is True and old_key["key"] not in str(relay.otks[("@bob:b", "B")])
    relay.otks[("@bob:b", "B")].clear()  # others claimed them all
    ev1 = _send(relay, alice, ["@alice:a", "@bob:b"], "through the fallback key", "$1")
    relay.deliver(bob)
    assert bob.decrypt(ev1, ROOM)["content"]["body"] == "through the fallback key"
    # carol claims the same fallback key before bob replaces it
    carol.track_users(["@bob:b"])
    relay.query(carol)
    relay.claim(carol, ["@bob:b"])

    # the server says the fallback key was handed out: the next upload replaces it
    bob.receive_sync({"device_unused_fallback_key_types": []})
    relay.upload(bob)
    (new_id, new_key), = relay.fallbacks[("@bob:b", "B")].items()
    assert new_id != old_id and new_key["key"] != old_key["key"]
    assert "fallback_keys" not in (bob.keys_upload_body() or {})  # once is enough
    bob.receive_sync({"device_unused_fallback_key_types": ["signed_curve25519"]})
    assert "fallback_keys" not in (bob.keys_upload_body() or {})

    # a session opened with the old fallback key still works after the replacement
    relay.send_to_device(carol, carol.room_key_needs_sharing("!other:c", ["@bob:b"]))
    content = carol.encrypt("!other:c", "m.room.message", {"body": "late, on the old fallback key"})
    relay.deliver(bob)
    ev2 = {"type": "m.room.encrypted", "event_id": "$2", "origin_server_ts": 2, "sender": "@carol:c",
           "content": content}
    assert bob.decrypt(ev2, "!other:c")["content"]["body"] == "late, on the old fallback key"


def test_leaving_member_does_not_get_the_next_session() -> None:
    relay = Relay()
    alice, bob, eve = _machine("@alice:a", "A"), _machine("@bob:b", "B"), _machine("@eve:e", "E")
    for m in (alice, bob, eve):
        relay.upload(m)
    ev1 = _send(relay, alice, ["@alice:a", "@bob:b", "@eve:e"], "before", "$1")
    relay.deliver(eve)
    assert eve.decrypt(ev1, ROOM)["content"]["body"] == "before"
    alice.membership_changed(ROOM)  # eve left
    ev2 = _send(relay, alice, ["@alice:a", "@bob:b"], "after", "$2")
    assert ev2["content"]["session_id"] != ev1["content"]["session_id"]
    relay.deliver(bob)
    assert bob.decrypt(ev2, ROOM)["content"]["body"] == "after"
    assert relay.deliver(eve) == []
    with pytest.raises(DecryptionError):
        eve.decrypt(ev2, ROOM)


def test_sessions_rotate_after_the_rooms_message_limit_and_age() -> None:
    now = [1_000]
    relay = Relay()
    alice = OlmMachine("@alice:a", "A", CryptoStore(":memory:", "pw", fast_kdf=True), now_ms=lambda: now[0])
    bob = _machine("@bob:b", "B")
    relay.upload(alice)
    relay.upload(bob)
    settings = {"rotation_period_msgs": 2, "rotation_period_ms": 60_000}
    alice.track_users(["@bob:b"])
    relay.query(alice)
    relay.claim(alice, ["@bob:b"])
    ids = []
    for _ in range(3):
        relay.send_to_device(alice, alice.room_key_needs_sharing(ROOM, ["@bob:b"], settings))
        ids.append(alice.encrypt(ROOM, "m.room.message", {"body": "x"})["session_id"])
    assert ids[0] == ids[1] != ids[2]  # two messages per session
    now[0] += 60_000
    relay.send_to_device(alice, alice.room_key_needs_sharing(ROOM, ["@bob:b"], settings))
    assert alice.encrypt(ROOM, "m.room.message", {"body": "y"})["session_id"] != ids[2]


def test_replayed_ciphertext_under_another_event_is_refused() -> None:
    relay = Relay()
    alice, bob = _machine("@alice:a", "A"), _machine("@bob:b", "B")
    relay.upload(alice)
    relay.upload(bob)
    ev = _send(relay, alice, ["@bob:b"], "pay 10", "$1")
    relay.deliver(bob)
    assert bob.decrypt(ev, ROOM)["content"]["body"] == "pay 10"
    assert bob.decrypt(ev, ROOM)["content"]["body"] == "pay 10"  # the same event again is fine
    with pytest.raises(DecryptionError, match="replayed"):
        bob.decrypt({**ev, "event_id": "$replay"}, ROOM)
    with pytest.raises(DecryptionError, match="unknown Megolm session"):  # sessions are bound to their room
        bob.decrypt({**ev, "event_id": "$x", "origin_server_ts": 2}, "!other:a")


def test_forged_device_keys_and_one_time_keys_are_ignored() -> None:
    relay = Relay()
    alice, bob, mallory = _machine("@alice:a", "A"), _machine("@bob:b", "B"), _machine("@mallory:m", "M")
    for m in (alice, bob, mallory):
        relay.upload(m)
    # mallory's keys published under bob's device: not self-signed by bob's key
    forged = dict(relay.devices["@mallory:m"]["M"])
    forged.update(user_id="@bob:b", device_id="B2")
    relay.devices["@bob:b"]["B2"] = forged
    alice.track_users(["@bob:b"])
    relay.query(alice)
    assert set(alice.devices("@bob:b")) == {"B"}
    # later, bob's real device ID shows up with different identity keys: the first ones stay
    real = alice.devices("@bob:b")["B"]["keys"]
    impostor = _machine("@bob:b", "B")  # validly self-signed, with other identity keys
    relay.devices["@bob:b"]["B"] = impostor.device_keys()
    alice.receive_sync({"device_lists": {"changed": ["@bob:b"]}})
    relay.query(alice)
    assert alice.devices("@bob:b")["B"]["keys"] == real
    # a one-time key signed by someone else opens no session
    bad_otk = mallory.sign({"key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
    alice.keys_claimed({"one_time_keys": {"@bob:b": {"B": {"signed_curve25519:x": bad_otk}}}})
    assert alice.keys_claim_body(["@bob:b"]) == {"one_time_keys": {"@bob:b": {"B": "signed_curve25519"}}}


def test_store_survives_restart_and_needs_the_passphrase(tmp_path: Path) -> None:
    relay = Relay()
    path = str(tmp_path / "bob.db")
    alice, bob = _machine("@alice:a", "A"), _machine("@bob:b", "B", path, "bob's secret")
    relay.upload(alice)
    relay.upload(bob)
    ev = _send(relay, alice, ["@bob:b"], "remember me", "$1")
    relay.deliver(bob)
    identity = bob.curve25519
    bob.store.close()
    with pytest.raises(WrongPassphrase):
        CryptoStore(path, "guess", fast_kdf=True)
    again = _machine("@bob:b", "B", path, "bob's secret")
    assert again.curve25519 == identity
    assert again.decrypt(ev, ROOM)["content"]["body"] == "remember me"
    raw = again.store.raw_bytes()
    assert b"remember me" not in raw and identity.encode() not in raw
    # the Olm session survived too: a second message over it needs no new one-time key
    ev2 = _send(relay, alice, ["@bob:b"], "again", "$2")
    assert ev2["content"]["session_id"] == ev["content"]["session_id"]
