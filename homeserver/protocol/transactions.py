"""Outbound transactions (server-server API §Transactions): their size limits, the body, and the
retry schedule of a destination that does not answer. Pure: the caller supplies times."""

from __future__ import annotations

from typing import Any

#: A transaction carries at most 50 PDUs and 100 EDUs (server-server API, PUT /send/{txnId}).
MAX_PDUS = 50
MAX_EDUS = 100


def transaction_body(origin: str, origin_server_ts: int, pdus: list[dict[str, Any]],
                     edus: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON body of `PUT /_matrix/federation/v1/send/{txnId}`."""
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise ValueError(f"a transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs")
    return {"origin": origin, "origin_server_ts": origin_server_ts, "pdus": pdus, "edus": edus}


def retry_delay_ms(failures: int, base_ms: int, cap_ms: int) -> int:
    """Exponential backoff after `failures` consecutive failures (1 -> base, doubling), capped."""
    if failures <= 0:
        return 0
    return min(cap_ms, base_ms << min(failures - 1, 40))
