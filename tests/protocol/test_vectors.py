"""The spec's own test vectors (appendices) and the digest's derived v11 values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homeserver.protocol.canonical import encode_canonical_json, unpadded_b64decode, unpadded_b64encode
from homeserver.protocol.events import compute_content_hash, compute_event_id, hash_and_sign_event
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import sign_json, signing_key_from_seed, verify_json_signature, verify_key_b64
from homeserver.protocol.errors import MatrixError

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "shared" / "matrix-spec" / "test-vectors.json").read_text())
KEY = signing_key_from_seed(VECTORS["signing_key"]["seed_base64"], "1")
# Pre-v11 redaction rules with v3-style (standard alphabet) event IDs, for the official vectors.
V10_STD = RoomVersion("10", False, "v9", "v10", False, False, True, True, True, False, True)


@pytest.mark.parametrize("case", VECTORS["unpadded_base64"]["cases"])
def test_unpadded_base64(case: dict) -> None:
    data = case["input_utf8"].encode()
    assert unpadded_b64encode(data) == case["expected"]
    assert unpadded_b64decode(case["expected"]) == data


@pytest.mark.parametrize("case", VECTORS["canonical_json"]["cases"])
def test_canonical_json(case: dict) -> None:
    assert encode_canonical_json(json.loads(case["input_json_text"])).decode() == case["expected_canonical"]


def test_canonical_rejects_floats_and_big_ints() -> None:
    for bad in ({"a": 1.5}, {"a": 2**53}, {"a": float("nan")}):
        with pytest.raises(MatrixError) as e:
            encode_canonical_json(bad)
        assert e.value.errcode == "M_BAD_JSON"


def test_signing_key_public_part() -> None:
    assert verify_key_b64(KEY) == VECTORS["signing_key"]["derived_public_key_unpadded_base64"]


@pytest.mark.parametrize("case", VECTORS["json_signing"]["cases"])
def test_json_signing(case: dict) -> None:
    signed = sign_json(case["input"], "domain", KEY)
    assert signed == case["expected_signed"]
    verify_json_signature(signed, "domain", "ed25519:1", verify_key_b64(KEY))
    tampered = dict(signed, extra=1)
    with pytest.raises(MatrixError):
        verify_json_signature(tampered, "domain", "ed25519:1", verify_key_b64(KEY))


@pytest.mark.parametrize("i", [0, 1])
def test_event_signing_pre_v11(i: int) -> None:
    case = VECTORS["event_signing"]["cases"][i]
    signed = hash_and_sign_event(case["input"], "domain", KEY, V10_STD)
    expected = case["expected_signed"]
    assert signed["hashes"] == expected["hashes"]
    assert signed["signatures"] == expected["signatures"]
    derived = VECTORS["derived_values"]["cases"][i]
    assert compute_event_id(signed, V10_STD) == "$" + derived["room_versions_1_to_10"]["reference_hash_unpadded_base64"]


@pytest.mark.parametrize("i", [0, 1])
def test_event_signing_v11_derived(i: int) -> None:
    case = VECTORS["event_signing"]["cases"][i]
    derived = VECTORS["derived_values"]["cases"][i]["room_versions_11_and_12_redaction"]
    rv = KNOWN_ROOM_VERSIONS["11"]
    signed = hash_and_sign_event(case["input"], "domain", KEY, rv)
    assert signed["hashes"]["sha256"] == derived["hashes.sha256"]
    assert signed["signatures"]["domain"]["ed25519:1"] == derived["signature_ed25519_1"]
    assert compute_content_hash(signed) == derived["hashes.sha256"]
    if "reference_hash_urlsafe_unpadded_base64" in derived:
        assert compute_event_id(signed, rv) == "$" + derived["reference_hash_urlsafe_unpadded_base64"]
