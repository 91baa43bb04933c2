"""Sending one transaction (`PUT /_matrix/federation/v1/send/{txnId}`) through the signed client,
for homeserver/peering/sender.py: which answers mean "never" rather than "later"."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from federation.client import FederationClient, RemoteError
from homeserver.peering.sender import TransactionRefused
from homeserver.protocol.errors import MatrixError

#: 4xx answers that may well change on a later try (rate limits, keys not yet fetched).
RETRYABLE_4XX = frozenset({401, 408, 429})


async def send_transaction(client: FederationClient, destination: str, txn_id: str,
                           body: dict[str, Any]) -> dict[str, Any]:
    """The destination's answer; TransactionRefused if it will never take this transaction.
    Retries and backoff are the sender's: the request itself is tried once."""
    path = f"/_matrix/federation/v1/send/{quote(txn_id, safe='')}"
    try:
        return await client.request("PUT", destination, path, None, body, idempotent=False)
    except RemoteError as e:
        if 400 <= e.remote_status < 500 and e.remote_status not in RETRYABLE_4XX:
            raise TransactionRefused(f"{e.remote_status} {e.remote_errcode or ''}".strip()) from e
        raise
    except MatrixError as e:
        if e.status == 403:  # federation with this destination is not allowed here
            raise TransactionRefused(str(e)) from e
        raise
