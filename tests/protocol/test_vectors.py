"""The spec's own test vectors (appendices) and the digest's derived v11 values."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from homeserver.protocol.canonical import encode_canonical_json, unpadded_b64decode, unpadded_b64encode
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import compute_content_hash, compute_event_id, hash_and_sign_event
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.protocol.signing import sign_json, signing_key_from_seed, verify_json_signature, verify_key_b64


def _vectors_path() -> Path:
    """``test-vectors.json`` beside the spec data: ``$PARLEY_MATRIX_SPEC`` or ``spec/matrix-spec``."""
    override = os.environ.get("PARLEY_MATRIX_SPEC")
    if override:
        root = Path(override).expanduser().resolve()
        for candidate in (root / "test-vectors.json", root.parent / "test-vectors.json"):
            if candidate.is_file():
                return candidate
    return Path(__file__).resolve().parents[2] / "spec" / "matrix-spec" / "test-vectors.json"


VECTORS = json.loads(_vectors_path().read_text())
KEY = signing_key_from_seed(VECTORS["signing_key"]["seed_base64"], "1")
# Pre-v11 redaction rules with v3-style (standard alphabet) event IDs, for the official vectors.
V10_STD = dataclasses.replace(KNOWN_ROOM_VERSIONS["10"], event_id_urlsafe=False)


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
    """The official vectors, step by step: content hash over the full event, signature over the
    pre-v11 redacted form. Case 2 is a v1-style event whose real `event_id` is covered."""
    case = VECTORS["event_signing"]["cases"][i]
    expected = case["expected_signed"]
    event = dict(case["input"])
    event["hashes"] = {"sha256": compute_content_hash(event)}
    assert event["hashes"] == expected["hashes"]
    signed = sign_json(redact(event, V10_STD), "domain", KEY)
    assert signed["signatures"] == expected["signatures"]
    if "event_id" not in case["input"]:  # hash_and_sign_event is the same pipeline for v3+ PDUs
        full = hash_and_sign_event(case["input"], "domain", KEY, V10_STD)
        assert full["hashes"] == expected["hashes"] and full["signatures"] == expected["signatures"]
        derived = VECTORS["derived_values"]["cases"][i]["room_versions_1_to_10"]
        assert compute_event_id(full, V10_STD) == "$" + derived["reference_hash_unpadded_base64"]
        assert compute_event_id(full, KNOWN_ROOM_VERSIONS["10"]) == \
            "$" + derived["reference_hash_urlsafe_unpadded_base64"]


def test_event_id_ignores_informational_event_id() -> None:
    """Room v3+ PDUs have no event_id: a caller's informational copy changes nothing."""
    case = VECTORS["event_signing"]["cases"][0]
    rv = KNOWN_ROOM_VERSIONS["11"]
    full = hash_and_sign_event(case["input"], "domain", KEY, rv)
    assert compute_event_id(dict(full, event_id="$whatever"), rv) == compute_event_id(full, rv)
    again = hash_and_sign_event(dict(case["input"], event_id="$whatever"), "domain", KEY, rv)
    assert "event_id" not in again and again == full


@pytest.mark.parametrize("i", [0, 1])
def test_event_signing_v11_derived(i: int) -> None:
    case = VECTORS["event_signing"]["cases"][i]
    derived = VECTORS["derived_values"]["cases"][i]["room_versions_11_and_12_redaction"]
    rv = KNOWN_ROOM_VERSIONS["11"]
    event = dict(case["input"])
    event["hashes"] = {"sha256": compute_content_hash(event)}
    assert event["hashes"]["sha256"] == derived["hashes.sha256"]
    signed = sign_json(redact(event, rv), "domain", KEY)
    assert signed["signatures"]["domain"]["ed25519:1"] == derived["signature_ed25519_1"]
    verify_json_signature(redact(event, rv) | {"signatures": signed["signatures"]}, "domain", "ed25519:1",
                          verify_key_b64(KEY))
    if "event_id" not in case["input"]:  # the derived hash of case 2 covers its v1 event_id
        assert compute_event_id(signed, rv) == "$" + derived["reference_hash_urlsafe_unpadded_base64"]
