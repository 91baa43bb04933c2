"""Random JSON thrown at every E2EE endpoint, at every nesting level a field can take: a Matrix
error or a success, never a 500. The values come from a seeded generator (reproducible)."""

from __future__ import annotations

import random
from typing import Any

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
SEED = 12


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, 1.5, 10**30])
    if kind == 3:
        return rng.choice(["", "x", "ed25519:", "signed_curve25519:A", "@u:parley.test", "*", "é" * 300])
    if kind == 4:
        return "curve25519:" + "A" * rng.randrange(0, 300)
    if kind == 5:
        return []
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = ["user_id", "device_id", "keys", "signatures", "algorithms", "usage", "key", "fallback",
            "@u:parley.test", "DEV", "*", "ed25519:DEV", "sessions", "rooms", "session_data",
            "first_message_index", "forwarded_count", "is_verified", "algorithm", "auth_data"]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _bodies(rng: random.Random, user: str, device: str) -> list[tuple[str, str, Any]]:
    v = _value(rng)
    return [
        ("POST", "/keys/upload", {"device_keys": v}),
        ("POST", "/keys/upload", {"device_keys": {"user_id": user, "device_id": device, "algorithms": [],
                                                  "keys": {f"ed25519:{device}": v}, "signatures": v}}),
        ("POST", "/keys/upload", {"one_time_keys": v, "fallback_keys": _value(rng)}),
        ("POST", "/keys/upload", {"one_time_keys": {"signed_curve25519:A": v}}),
        ("POST", "/keys/query", {"device_keys": v}),
        ("POST", "/keys/query", {"device_keys": {user: v}}),
        ("POST", "/keys/claim", {"one_time_keys": v}),
        ("POST", "/keys/claim", {"one_time_keys": {user: v}}),
        ("POST", "/keys/device_signing/upload", {"master_key": v, "self_signing_key": _value(rng)}),
        ("POST", "/keys/signatures/upload", {user: v}),
        ("POST", "/keys/signatures/upload", {user: {device: v}}),
        ("PUT", "/sendToDevice/m.test/" + str(rng.random()), {"messages": v}),
        ("PUT", "/sendToDevice/m.test/" + str(rng.random()), {"messages": {user: v}}),
        ("POST", "/room_keys/version", v if isinstance(v, dict) else {"auth_data": v, "algorithm": "a"}),
        ("PUT", "/room_keys/keys?version=1", {"rooms": v}),
        ("PUT", "/room_keys/keys/!r:parley.test?version=1", {"sessions": v}),
        ("PUT", "/room_keys/keys/!r:parley.test/s?version=1", v if isinstance(v, dict) else {"x": v}),
        ("PUT", "/room_keys/version/1", v if isinstance(v, dict) else {"auth_data": v}),
    ]


async def test_random_json_never_crashes(client: MatrixClient) -> None:
    alice = await client.register("alice")
    await alice.ok("POST", f"{V3}/room_keys/version", {"algorithm": "a", "auth_data": {}})
    rng = random.Random(SEED)
    for _ in range(15):
        for method, path, body in _bodies(rng, alice.user_id or "", alice.device_id or ""):
            r = await alice.request(method, V3 + path, body, validate=False)
            assert r.status_code < 500, (method, path, body, r.text)
            if r.status_code >= 400:
                assert r.json()["errcode"].startswith("M_"), r.text
    for path in ("/keys/changes?from=s1&to=x", "/keys/changes?from=s99999999999_1_1_1&to=s1",
                 "/room_keys/keys?version=-1", "/room_keys/version/99999999999999999999"):
        r = await alice.get(V3 + path)
        assert 400 <= r.status_code < 500 or r.status_code == 200, (path, r.text)
