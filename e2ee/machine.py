"""An Olm/Megolm machine for one device, on vodozemac. Sans-I/O: it builds request bodies and
consumes responses and sync sections; `client.py` (or any caller) does the HTTP.

What it keeps (sealed in a `CryptoStore`): the Olm account (with its fallback key, replaced once
sync says a peer used it), the devices of tracked users (each
checked against its own ed25519 self-signature; a known device's identity keys are never
replaced), Olm sessions per peer identity key, inbound Megolm sessions per room and session, one
outbound Megolm session per room with the devices it was shared with, and the (session, index)
pairs already decrypted, so a replayed ciphertext under another event is refused.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import orjson
import vodozemac as vz
from canonicaljson import encode_canonical_json

from e2ee.store import CryptoStore

log = logging.getLogger("parley.e2ee")

OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
OTK_TARGET = 50
ROTATION_MSGS = 100
ROTATION_MS = 7 * 24 * 3600 * 1000


class DecryptionError(Exception):
    """A ciphertext this device cannot (or must not) decrypt."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def signable(obj: dict[str, Any]) -> bytes:
    return bytes(encode_canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}))


def verify_signed(obj: dict[str, Any], user_id: str, key_id: str, ed25519: str) -> bool:
    try:
        sig = obj["signatures"][user_id][key_id]
        vz.Ed25519PublicKey.from_base64(ed25519).verify_signature(signable(obj), vz.Ed25519Signature.from_base64(sig))
        return True
    except (KeyError, TypeError, ValueError):
        return False


class OlmMachine:
    def __init__(self, user_id: str, device_id: str, store: CryptoStore,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.user_id, self.device_id, self.store, self.now_ms = user_id, device_id, store, now_ms
        pickled = store.get("account", "account")
        if pickled is None:
            self.account = vz.Account()
            self._device_keys_published = False
            self._fallback_wanted = True
            self._save_account()
        else:
            self.account = vz.Account.from_pickle(pickled["pickle"], store.key)
            self._device_keys_published = bool(pickled["published"])
            self._fallback_wanted = bool(pickled.get("fallback_wanted", True))
        self.server_otk_count: int | None = None

    # ------------------------------------------------------------------ identity and uploads

    @property
    def curve25519(self) -> str:
        return self.account.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        return self.account.ed25519_key.to_base64()

    def _save_account(self) -> None:
        self.store.put("account", "account", {"pickle": self.account.pickle(self.store.key),
                                              "published": self._device_keys_published,
                                              "fallback_wanted": self._fallback_wanted})

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        sig = self.account.sign(signable(obj)).to_base64()
        sigs = dict(obj.get("signatures", {}))
        sigs[self.user_id] = {**sigs.get(self.user_id, {}), f"ed25519:{self.device_id}": sig}
        return {**obj, "signatures": sigs}

    def device_keys(self) -> dict[str, Any]:
        return self.sign({"user_id": self.user_id, "device_id": self.device_id, "algorithms": [OLM, MEGOLM],
                          "keys": {f"curve25519:{self.device_id}": self.curve25519,
                                   f"ed25519:{self.device_id}": self.ed25519}})

    def keys_upload_body(self) -> dict[str, Any] | None:
        """What POST /keys/upload should carry now, or None: the device keys until published,
        one-time keys up to `OTK_TARGET` on the server (count from sync or the last upload), and a
        new fallback key when there is none yet or the server handed the last one out. Peers get
        the fallback key when the one-time keys run out; the account keeps the previous one too,
        for sessions opened with it before the new one was uploaded."""
        body: dict[str, Any] = {}
        if not self._device_keys_published:
            body["device_keys"] = self.device_keys()
        have = self.server_otk_count if self.server_otk_count is not None else 0
        want = min(OTK_TARGET, self.account.max_number_of_one_time_keys // 2) - have
        if want > 0 and not self.account.one_time_keys:
            self.account.generate_one_time_keys(want)
            self._save_account()
        if self.account.one_time_keys:
            body["one_time_keys"] = {f"signed_curve25519:{kid}": self.sign({"key": key.to_base64()})
                                     for kid, key in self.account.one_time_keys.items()}
        if self._fallback_wanted and not self._unpublished_fallback_key():
            cast(Any, self.account).generate_fallback_key()
            self._save_account()
        if fallback := self._unpublished_fallback_key():
            body["fallback_keys"] = {f"signed_curve25519:{kid}": self.sign({"key": key.to_base64(), "fallback": True})
                                     for kid, key in fallback.items()}
        return body or None

    def _unpublished_fallback_key(self) -> dict[str, vz.Curve25519PublicKey]:
        # in the bindings, but missing from their type stub
        return dict(cast(Any, self.account).fallback_key)

    def keys_uploaded(self, response: dict[str, Any]) -> None:
        if self._unpublished_fallback_key():  # a new fallback key went with this upload
            self._fallback_wanted = False
        self.account.mark_keys_as_published()
        self._device_keys_published = True
        self.server_otk_count = int(response.get("one_time_key_counts", {}).get("signed_curve25519", 0))
        self._save_account()

    # ------------------------------------------------------------------ device tracking

    def track_users(self, user_ids: Iterable[str]) -> None:
        for user in user_ids:
            if self.store.get("tracked", user) is None:
                self.store.put("tracked", user, {"stale": True})

    def receive_sync(self, sync: dict[str, Any]) -> list[dict[str, Any]]:
        """Take a /sync response's E2EE sections; return its to-device events, decrypted where
        they were Olm-encrypted (each as {"type", "content", "sender", "sender_key"})."""
        lists = sync.get("device_lists") or {}
        for user in lists.get("changed", []):
            if self.store.get("tracked", user) is not None or user == self.user_id:
                self.store.put("tracked", user, {"stale": True})
        for user in lists.get("left", []):
            self.store.delete("tracked", user)
        counts = sync.get("device_one_time_keys_count")
        if isinstance(counts, dict):
            self.server_otk_count = int(counts.get("signed_curve25519", 0))
        unused = sync.get("device_unused_fallback_key_types")
        if isinstance(unused, list) and "signed_curve25519" not in unused and not self._fallback_wanted:
            self._fallback_wanted = True  # handed out: the next upload carries a new one
            self._save_account()
        out = []
        for ev in (sync.get("to_device") or {}).get("events", []):
            if ev.get("type") == "m.room.encrypted" and ev.get("content", {}).get("algorithm") == OLM:
                try:
                    out.append(self._receive_olm(ev["sender"], ev["content"]))
                except DecryptionError as e:
                    log.warning("to-device message from %s not decrypted: %s", ev.get("sender"), e)
            else:
                out.append(ev)
        return out

    def keys_query_body(self) -> dict[str, Any] | None:
        stale = [user for user, rec in self.store.items("tracked") if rec.get("stale")]
        return {"device_keys": {u: [] for u in stale}} if stale else None

    def keys_queried(self, response: dict[str, Any]) -> None:
        for user, devices in (response.get("device_keys") or {}).items():
            known: dict[str, Any] = self.store.get("devices", user) or {}
            fresh: dict[str, Any] = {}
            for device_id, keys in devices.items():
                ed = keys.get("keys", {}).get(f"ed25519:{device_id}")
                curve = keys.get("keys", {}).get(f"curve25519:{device_id}")
                if (keys.get("user_id") != user or keys.get("device_id") != device_id or not ed or not curve
                        or not verify_signed(keys, user, f"ed25519:{device_id}", ed)):
                    log.warning("ignoring device %s of %s: bad or unsigned keys", device_id, user)
                    if device_id in known:
                        fresh[device_id] = known[device_id]
                    continue
                old = known.get(device_id)
                if old is not None and old["keys"] != keys["keys"]:
                    log.warning("device %s of %s changed its identity keys: keeping the old ones", device_id, user)
                    fresh[device_id] = old
                    continue
                fresh[device_id] = keys
            self.store.put("devices", user, fresh)
            if self.store.get("tracked", user) is not None:
                self.store.put("tracked", user, {"stale": False})

    def devices(self, user_id: str) -> dict[str, Any]:
        return dict(self.store.get("devices", user_id) or {})

    # ------------------------------------------------------------------ Olm

    def _sessions(self, curve: str) -> list[vz.Session]:
        return [vz.Session.from_pickle(p, self.store.key) for p in self.store.get("olm", curve) or []]

    def _save_sessions(self, curve: str, sessions: list[vz.Session]) -> None:
        self.store.put("olm", curve, [s.pickle(self.store.key) for s in sessions[:10]])

    def keys_claim_body(self, user_ids: Iterable[str]) -> dict[str, Any] | None:
        """One-time keys to claim: devices of these users with no Olm session yet."""
        wanted: dict[str, dict[str, str]] = {}
        for user in user_ids:
            for device_id, keys in self.devices(user).items():
                if (user, device_id) == (self.user_id, self.device_id):
                    continue
                if not self.store.get("olm", keys["keys"][f"curve25519:{device_id}"]):
                    wanted.setdefault(user, {})[device_id] = "signed_curve25519"
        return {"one_time_keys": wanted} if wanted else None

    def keys_claimed(self, response: dict[str, Any]) -> None:
        for user, devices in (response.get("one_time_keys") or {}).items():
            for device_id, otks in devices.items():
                dev = self.devices(user).get(device_id)
                if dev is None or not isinstance(otks, dict):
                    continue
                ed, curve = dev["keys"][f"ed25519:{device_id}"], dev["keys"][f"curve25519:{device_id}"]
                for key_id, otk in otks.items():
                    if not key_id.startswith("signed_curve25519:") or not verify_signed(
                            otk, user, f"ed25519:{device_id}", ed):
                        log.warning("one-time key of %s/%s has a bad signature", user, device_id)
                        continue
                    session = self.account.create_outbound_session(
                        vz.Curve25519PublicKey.from_base64(curve), vz.Curve25519PublicKey.from_base64(otk["key"]))
                    self._save_sessions(curve, [session, *self._sessions(curve)])

    def olm_encrypt(self, user_id: str, device_id: str, event_type: str,
                    content: dict[str, Any]) -> dict[str, Any] | None:
        """An m.room.encrypted to-device content for one device, or None without a session."""
        dev = self.devices(user_id).get(device_id)
        if dev is None:
            return None
        curve, ed = dev["keys"][f"curve25519:{device_id}"], dev["keys"][f"ed25519:{device_id}"]
        sessions = self._sessions(curve)
        if not sessions:
            return None
        payload = {"type": event_type, "content": content, "sender": self.user_id, "sender_device": self.device_id,
                   "keys": {"ed25519": self.ed25519}, "recipient": user_id, "recipient_keys": {"ed25519": ed}}
        msg_type, body = sessions[0].encrypt(orjson.dumps(payload)).to_parts()
        self._save_sessions(curve, sessions)
        return {"algorithm": OLM, "sender_key": self.curve25519,
                "ciphertext": {curve: {"type": msg_type, "body": b64(body)}}}

    def _receive_olm(self, sender: str, content: dict[str, Any]) -> dict[str, Any]:
        sender_key = content.get("sender_key")
        part = (content.get("ciphertext") or {}).get(self.curve25519)
        if not isinstance(sender_key, str) or not isinstance(part, dict):
            raise DecryptionError("not encrypted for this device")
        try:
            msg = vz.AnyOlmMessage.from_parts(int(part["type"]), unb64(part["body"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DecryptionError(f"malformed Olm message: {e}") from None
        sessions = self._sessions(sender_key)
        plaintext: bytes | None = None
        for i, session in enumerate(sessions):
            try:
                plaintext = session.decrypt(msg)
            except (ValueError, vz.OlmDecryptionException):
                continue
            sessions.insert(0, sessions.pop(i))
            break
        if plaintext is None:
            pre = msg.to_pre_key()
            if pre is None:
                raise DecryptionError("no Olm session decrypts this message")
            try:
                peer = vz.Curve25519PublicKey.from_base64(sender_key)
                session, plaintext = self.account.create_inbound_session(peer, pre)
            except ValueError as e:
                raise DecryptionError(f"cannot open an Olm session: {e}") from None
            sessions.insert(0, session)
            self._save_account()  # its one-time key is used up
        self._save_sessions(sender_key, sessions)
        payload = orjson.loads(plaintext)
        if payload.get("recipient") != self.user_id or payload.get("sender") != sender or \
                (payload.get("recipient_keys") or {}).get("ed25519") != self.ed25519:
            raise DecryptionError("the Olm payload names another sender or recipient")
        claimed_ed = (payload.get("keys") or {}).get("ed25519")
        sender_device_id = str(payload.get("sender_device", ""))
        sender_device = self.devices(sender).get(sender_device_id)
        if sender_device is not None and sender_device["keys"].get(f"ed25519:{sender_device_id}") != claimed_ed:
            raise DecryptionError("the Olm payload's signing key is not the sending device's")
        if payload.get("type") == "m.room_key":
            self._receive_room_key(payload["content"], sender_key, str(claimed_ed))
        return {"type": payload.get("type"), "content": payload.get("content"), "sender": sender,
                "sender_key": sender_key}

    # ------------------------------------------------------------------ Megolm

    def _receive_room_key(self, content: dict[str, Any], sender_key: str, sender_ed: str) -> None:
        if content.get("algorithm") != MEGOLM:
            return
        room_id, session_id = content.get("room_id"), content.get("session_id")
        key = f"{room_id}|{session_id}"
        if self.store.get("inbound", key) is not None:
            return  # the first copy we got stays (it may start at an earlier index)
        session = vz.InboundGroupSession(vz.SessionKey(content["session_key"]))
        if session.session_id != session_id:
            raise DecryptionError("room key's session_id does not match its key")
        self.store.put("inbound", key, {"pickle": session.pickle(self.store.key), "sender_key": sender_key,
                                        "sender_ed25519": sender_ed, "room_id": room_id})

    def room_key_needs_sharing(self, room_id: str, user_ids: Iterable[str],
                               settings: dict[str, Any] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """To-device `m.room.encrypted` messages ({user: {device: content}}) that give the room's
        current outbound session to every device of `user_ids` that lacks it (devices without an
        Olm session are left out: claim their keys first). Starts a new session when none
        exists or the current one reached the room's rotation limits."""
        rec = self._outbound(room_id, settings or {})
        session = vz.GroupSession.from_pickle(rec["pickle"], self.store.key)
        key_content = {"algorithm": MEGOLM, "room_id": room_id, "session_id": session.session_id,
                       "session_key": session.session_key.to_base64()}
        messages: dict[str, dict[str, dict[str, Any]]] = {}
        shared: dict[str, list[str]] = rec["shared"]
        for user in user_ids:
            for device_id in self.devices(user):
                if (user, device_id) == (self.user_id, self.device_id) or device_id in shared.get(user, []):
                    continue
                enc = self.olm_encrypt(user, device_id, "m.room_key", key_content)
                if enc is not None:
                    messages.setdefault(user, {})[device_id] = enc
                    shared.setdefault(user, []).append(device_id)
        self.store.put("outbound", room_id, rec)
        # our own device can read what it sends
        self._receive_room_key(key_content, self.curve25519, self.ed25519)
        return messages

    def _outbound(self, room_id: str, settings: dict[str, Any]) -> dict[str, Any]:
        rec: dict[str, Any] | None = self.store.get("outbound", room_id)
        max_msgs = int(settings.get("rotation_period_msgs", ROTATION_MSGS))
        max_ms = int(settings.get("rotation_period_ms", ROTATION_MS))
        if rec is not None and (rec["count"] >= max_msgs or self.now_ms() - rec["created_ms"] >= max_ms):
            rec = None
        if rec is None:
            session = vz.GroupSession()
            rec = {"pickle": session.pickle(self.store.key), "created_ms": self.now_ms(), "count": 0,
                   "shared": {}, "max_msgs": max_msgs, "max_ms": max_ms}
            self.store.put("outbound", room_id, rec)
        return rec

    def membership_changed(self, room_id: str) -> None:
        """Someone left (or was removed): the next message starts a new session they never get."""
        self.store.delete("outbound", room_id)

    def encrypt(self, room_id: str, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """The m.room.encrypted content of a room event (call `room_key_needs_sharing` first)."""
        rec = self.store.get("outbound", room_id)
        if rec is None:
            raise ValueError("no outbound session for this room: share the room key first")
        session = vz.GroupSession.from_pickle(rec["pickle"], self.store.key)
        ciphertext = session.encrypt(orjson.dumps({"type": event_type, "content": content, "room_id": room_id}))
        rec["pickle"], rec["count"] = session.pickle(self.store.key), rec["count"] + 1
        self.store.put("outbound", room_id, rec)
        return {"algorithm": MEGOLM, "sender_key": self.curve25519, "device_id": self.device_id,
                "session_id": session.session_id, "ciphertext": ciphertext.to_base64()}

    def decrypt(self, event: dict[str, Any], room_id: str) -> dict[str, Any]:
        """A room's m.room.encrypted event, decrypted: {"type", "content", "sender_key",
        "sender_ed25519"}. Raises `DecryptionError` for unknown sessions and replays."""
        content = event.get("content") or {}
        if content.get("algorithm") != MEGOLM:
            raise DecryptionError("not a Megolm event")
        rec = self.store.get("inbound", f"{room_id}|{content.get('session_id')}")
        if rec is None:
            raise DecryptionError("unknown Megolm session (no room key received)")
        session = vz.InboundGroupSession.from_pickle(rec["pickle"], self.store.key)
        try:
            got = session.decrypt(vz.MegolmMessage.from_base64(str(content.get("ciphertext"))))
        except ValueError as e:
            raise DecryptionError(f"Megolm decryption failed: {e}") from None
        seen_key = f"{content.get('session_id')}|{got.message_index}"
        stamp = [event.get("event_id"), event.get("origin_server_ts")]
        seen = self.store.get("seen", seen_key)
        if seen is not None and seen != stamp:
            raise DecryptionError("replayed ciphertext: this message index was already used by another event")
        self.store.put("seen", seen_key, stamp)
        payload = orjson.loads(got.plaintext)
        if payload.get("room_id") != room_id:
            raise DecryptionError("the ciphertext belongs to another room")
        return {"type": payload.get("type"), "content": payload.get("content"), "sender_key": rec["sender_key"],
                "sender_ed25519": rec["sender_ed25519"]}
