"""Dehydrated devices (MSC3814) on both databases: upload, fetch, the device's to-device messages
with `next_batch`, replacement, deletion, and bad input answered with Matrix errors."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.signing import generate_signing_key, sign_json, verify_key_b64
from tests.api.test_e2ee_keys import Device
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"
DATA = {"algorithm": "m.dehydration.v2", "device_pickle": "c2VhbGVkIGJ5IHRoZSBjbGllbnQ", "nonce": "bm9uY2U"}


def _dehydrated(user: MatrixClient, device_id: str) -> Device:
    dev = Device(user)
    dev.device_id, dev.key = device_id, generate_signing_key(device_id)
    dev.ed25519 = verify_key_b64(dev.key)
    return dev


def _body(dev: Device, **extra: Any) -> dict[str, Any]:
    keys = sign_json({**{k: v for k, v in dev.device_keys().items() if k != "signatures"}, "dehydrated": True},
                     dev.user_id, dev.key)
    return {"device_id": dev.device_id, "device_data": DATA, "device_keys": keys, "one_time_keys": dev.otks(2),
            "initial_device_display_name": "Dehydrated device", **extra}


async def test_dehydrated_device_lifecycle(client: MatrixClient) -> None:
    alice, bob = await client.register("alice"), await client.register("bob")
    r = await alice.get(PREFIX)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    first = _dehydrated(alice, "DEHYDRATED1")
    assert await alice.ok("PUT", PREFIX, _body(first)) == {"device_id": "DEHYDRATED1"}
    assert await alice.ok("GET", PREFIX) == {"device_id": "DEHYDRATED1", "device_data": DATA}
    # its keys are published like any device's: senders share room keys with it
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert q["device_keys"][alice.user_id]["DEHYDRATED1"]["dehydrated"] is True
    claimed = await bob.ok("POST", f"{V3}/keys/claim",
                           {"one_time_keys": {alice.user_id: {"DEHYDRATED1": "signed_curve25519"}}})
    assert claimed["one_time_keys"][alice.user_id]["DEHYDRATED1"]

    for i in range(2):
        await bob.ok("PUT", f"{V3}/sendToDevice/m.room.encrypted/t{i}",
                     {"messages": {alice.user_id: {"DEHYDRATED1": {"n": i}}}})
    got = await alice.ok("GET", f"{PREFIX}/DEHYDRATED1/events")
    assert [e["content"] for e in got["events"]] == [{"n": 0}, {"n": 1}]
    assert all(e["sender"] == bob.user_id for e in got["events"])
    done = await alice.ok("GET", f"{PREFIX}/DEHYDRATED1/events", params={"from": got["next_batch"]})
    assert done == {"events": []}  # no next_batch: nothing more
    # the earlier batch was acknowledged by asking past it: it is gone
    assert await alice.ok("POST", f"{PREFIX}/DEHYDRATED1/events", {}) == {"events": []}

    r = await bob.get(f"{PREFIX}/DEHYDRATED1/events")
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN"
    r = await alice.get(f"{PREFIX}/{alice.device_id}/events")
    assert r.status_code == 403
    r = await alice.get(f"{PREFIX}/DEHYDRATED1/events", params={"from": "not-a-token"})
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"

    # a new dehydrated device replaces the old one, its keys and its messages
    second = _dehydrated(alice, "DEHYDRATED2")
    assert await alice.ok("PUT", PREFIX, _body(second)) == {"device_id": "DEHYDRATED2"}
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert set(q["device_keys"][alice.user_id]) == {"DEHYDRATED2"}  # alice's own client uploaded none
    devices = await alice.ok("GET", f"{V3}/devices")
    assert "DEHYDRATED1" not in {d["device_id"] for d in devices["devices"]}

    assert await alice.ok("DELETE", PREFIX) == {"device_id": "DEHYDRATED2"}
    assert (await alice.get(PREFIX)).status_code == 404
    assert (await alice.delete(PREFIX)).status_code == 404
    q = await bob.ok("POST", f"{V3}/keys/query", {"device_keys": {alice.user_id: []}})
    assert q["device_keys"][alice.user_id] == {}


async def test_bad_dehydrated_devices_get_matrix_errors(client: MatrixClient) -> None:
    alice = await client.register("alice")
    dev = _dehydrated(alice, "DEHYD")
    forger = _dehydrated(alice, "DEHYD")
    forged = _body(dev)
    forged["device_keys"] = {**forged["device_keys"], "signatures": _body(forger)["device_keys"]["signatures"]}
    login_device = _dehydrated(alice, str(alice.device_id))
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in _body(dev).items() if k != "device_id"}, "M_INVALID_PARAM"),
        (_body(dev, device_id=""), "M_INVALID_PARAM"),
        (_body(dev, device_id=7), "M_INVALID_PARAM"),
        (_body(dev, device_data="nope"), "M_INVALID_PARAM"),
        (_body(dev, device_data={"blob": "x" * 300_000}), "M_INVALID_PARAM"),
        ({k: v for k, v in _body(dev).items() if k != "device_keys"}, "M_INVALID_PARAM"),
        (_body(dev, initial_device_display_name=5), "M_INVALID_PARAM"),
        (forged, "M_INVALID_SIGNATURE"),
        (_body(login_device), "M_INVALID_PARAM"),  # the ID of a device a client runs
    ]
    for body, errcode in cases:
        r = await alice.put(PREFIX, body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["errcode"] == errcode, (body, r.json())
    r = await alice.request("PUT", PREFIX, raw=b"{not json")
    assert r.status_code == 400 and r.json()["errcode"] == "M_NOT_JSON"
    # nothing was created by the refused uploads
    assert (await alice.get(PREFIX)).status_code == 404
    devices = await alice.ok("GET", f"{V3}/devices")
    assert [d["device_id"] for d in devices["devices"]] == [alice.device_id]
