"""The outbound transaction rules: size limits and the retry schedule."""

from __future__ import annotations

import pytest

from homeserver.protocol.transactions import MAX_EDUS, MAX_PDUS, retry_delay_ms, transaction_body


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [retry_delay_ms(n, 1_000, 60_000) for n in range(0, 9)] == [
        0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
    assert retry_delay_ms(10_000, 1_000, 60_000) == 60_000  # no overflow after a long outage


def test_transaction_body_and_its_limits() -> None:
    body = transaction_body("a.example", 5, [{"type": "x"}] * MAX_PDUS, [{"edu_type": "m.typing"}] * MAX_EDUS)
    assert body["origin"] == "a.example" and body["origin_server_ts"] == 5
    assert len(body["pdus"]) == 50 and len(body["edus"]) == 100
    with pytest.raises(ValueError):
        transaction_body("a.example", 5, [{}] * 51, [])
    with pytest.raises(ValueError):
        transaction_body("a.example", 5, [], [{}] * 101)
