"""Cross-signing (client-server API §Cross-signing): a user's master key signs their
self-signing key (which signs their devices) and user-signing key (which signs other users'
master keys). The server checks every signature it is handed and shows them in /keys/query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.protocol.e2e_keys import CROSS_SIGNING_USAGES, check_cross_signing_key, check_signature
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

#: Most signed objects in one /keys/signatures/upload.
MAX_SIGNATURES = 1000

#: (users whose device lists changed for everyone sharing a room, users to wake themselves)
Announce = Callable[[list[str], list[str]], Awaitable[None]]


def _unsigned_body(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


class CrossSigningService:
    def __init__(self, stores: Stores, announce: Announce) -> None:
        self.stores = stores
        self._announce = announce
        #: Called with (user, new public keys by usage) after a master or self-signing key
        #: changed (m.signing_key_update to other servers).
        self.on_public_keys: Callable[[str, dict[str, dict[str, Any]]], Awaitable[None]] | None = None

    async def _keys(self, user_id: str) -> dict[str, dict[str, Any]]:
        return (await self.stores.cross_signing.keys_for_users([user_id])).get(user_id, {})

    async def needs_auth(self, user_id: str, body: dict[str, Any]) -> bool:
        """User-interactive auth is needed to replace cross-signing keys, not to upload the
        first ones (spec v1.11) nor to upload the same keys again (a retried request)."""
        existing = await self._keys(user_id)
        if "master" not in existing:
            return False
        return any(body.get(f"{u}_key") is not None and body[f"{u}_key"] != existing.get(u)
                   for u in CROSS_SIGNING_USAGES)

    async def upload(self, user_id: str, body: dict[str, Any]) -> None:
        new: dict[str, dict[str, Any]] = {}
        for usage in CROSS_SIGNING_USAGES:
            key = body.get(f"{usage}_key")
            if key is not None:
                check_cross_signing_key(key, user_id, usage)
                new[usage] = key
        if not new:
            return
        master = new.get("master") or (await self._keys(user_id)).get("master")
        if master is None:
            raise MatrixError(400, "M_INVALID_PARAM", "Upload a master key first")
        master_id, master_pub = check_cross_signing_key(master, user_id, "master")
        for usage in ("self_signing", "user_signing"):
            if usage in new:
                check_signature(new[usage], user_id, master_id, master_pub)
        # The user-signing key is private to its owner: a new one alone is only their own news.
        public = "master" in new or "self_signing" in new
        async with self.stores.stream.write() as (c, pos):
            for usage, key in new.items():
                await self.stores.cross_signing.set_key(c, user_id, usage, key)
            await self.stores.e2e_keys.add_device_list_change(c, user_id, pos, None if public else user_id)
        await self._announce([user_id] if public else [], [user_id])
        if public and self.on_public_keys is not None:
            await self.on_public_keys(user_id, {u: k for u, k in new.items() if u != "user_signing"})

    # ------------------------------------------------------------------ signatures

    async def upload_signatures(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if not all(isinstance(v, dict) for v in body.values()):
            raise MatrixError(400, "M_BAD_JSON", "Each user must map key IDs to signed objects")
        if sum(len(v) for v in body.values()) > MAX_SIGNATURES:
            raise MatrixError(400, "M_INVALID_PARAM", f"At most {MAX_SIGNATURES} signed objects at once")
        mine = await self._keys(user_id)
        failures: dict[str, dict[str, Any]] = {}
        rows: list[tuple[str, str, str, str, str]] = []
        for target, objs in body.items():
            for key_id, obj in objs.items():
                try:
                    rows += await self._check_one(user_id, mine, target, key_id, obj)
                except MatrixError as e:
                    failures.setdefault(target, {})[key_id] = e.to_dict()
        if rows:
            # A signature on my own keys changes what everyone sees of me; my signature on someone
            # else's master key is shown to me only, so it is news for my devices alone.
            targets = sorted({r[2] for r in rows})
            async with self.stores.stream.write() as (c, pos):
                await self.stores.cross_signing.add_signatures(c, rows)
                for t in targets:
                    await self.stores.e2e_keys.add_device_list_change(c, t, pos, None if t == user_id else user_id)
            await self._announce([user_id] if user_id in targets else [], [user_id])
        return {"failures": failures}

    async def _check_one(
        self, user_id: str, mine: dict[str, dict[str, Any]], target: str, key_id: str, obj: Any,
    ) -> list[tuple[str, str, str, str, str]]:
        if not isinstance(obj, dict) or not isinstance(obj.get("signatures", {}).get(user_id), dict):
            raise MatrixError(400, "M_INVALID_PARAM", f"No signatures by {user_id}")
        sigs: dict[str, Any] = obj["signatures"][user_id]
        if target != user_id:
            # Another user's master key, signed with my user-signing key.
            theirs = (await self.stores.cross_signing.keys_for_users([target])).get(target, {}).get("master")
            signer = mine.get("user_signing")
            if theirs is None or key_id not in (theirs["keys"].values()):
                raise MatrixError(404, "M_NOT_FOUND", "No such master key")
            if signer is None:
                raise MatrixError(400, "M_MISSING_PARAM", "Upload a user-signing key first")
            return [self._verified(user_id, signer, target, key_id, obj, theirs)]
        device = await self.stores.e2e_keys.get_device_keys(user_id, key_id)
        if device is not None:
            signer = mine.get("self_signing")
            if signer is None:
                raise MatrixError(400, "M_MISSING_PARAM", "Upload a self-signing key first")
            return [self._verified(user_id, signer, user_id, key_id, obj, device)]
        master = mine.get("master")
        if master is None or key_id not in master["keys"].values():
            raise MatrixError(404, "M_NOT_FOUND", "No such device or key")
        # My master key, signed by one of my devices.
        out = []
        for sig_key_id in sigs:
            dev = await self.stores.e2e_keys.get_device_keys(user_id, sig_key_id.partition(":")[2])
            if dev is None or not sig_key_id.startswith("ed25519:"):
                continue
            if _unsigned_body(obj) != _unsigned_body(master):
                raise MatrixError(400, "M_INVALID_PARAM", "The signed key is not the stored master key")
            check_signature(obj, user_id, sig_key_id, dev["keys"].get(sig_key_id, ""))
            out.append((user_id, sig_key_id, user_id, key_id, str(sigs[sig_key_id])))
        if not out:
            raise MatrixError(400, "M_INVALID_SIGNATURE", "No signature by one of your devices")
        return out

    @staticmethod
    def _verified(user_id: str, signer: dict[str, Any], target: str, key_id: str, obj: dict[str, Any],
                  stored: dict[str, Any]) -> tuple[str, str, str, str, str]:
        (signer_id, signer_pub), = signer["keys"].items()
        if _unsigned_body(obj) != _unsigned_body(stored):
            raise MatrixError(400, "M_INVALID_PARAM", "The signed key is not the stored key")
        check_signature(obj, user_id, signer_id, signer_pub)
        return (user_id, signer_id, target, key_id, str(obj["signatures"][user_id][signer_id]))

    # ------------------------------------------------------------------ /keys/query

    async def decorate(self, requester: str, result: dict[str, Any]) -> None:
        """Add the cross-signing keys of the queried users and the signatures made with them
        (others' signatures on a master key are only shown to the user who made them)."""
        users = list(result["device_keys"])
        keys = await self.stores.cross_signing.keys_for_users(users)
        sigs = await self.stores.cross_signing.signatures_on(users)

        def with_sigs(owner: str, key_id: str, obj: dict[str, Any]) -> dict[str, Any]:
            extra = [s for s in sigs.get((owner, key_id), []) if s[0] in (owner, requester)]
            if not extra:
                return obj
            out = dict(obj)
            merged = {u: dict(v) for u, v in obj.get("signatures", {}).items()}
            for signer, signer_key, sig in extra:
                merged.setdefault(signer, {})[signer_key] = sig
            out["signatures"] = merged
            return out

        for owner, devices in result["device_keys"].items():
            for dev, obj in devices.items():
                devices[dev] = with_sigs(owner, dev, obj)
        for usage, field in (("master", "master_keys"), ("self_signing", "self_signing_keys"),
                             ("user_signing", "user_signing_keys")):
            found = {}
            for owner in users:
                key = keys.get(owner, {}).get(usage)
                if key is None or (usage == "user_signing" and owner != requester):
                    continue
                (pub,) = key["keys"].values()
                found[owner] = with_sigs(owner, pub, key)
            result[field] = found
