"""Wiring of the federation sender and the EDU registry into the composition root
(homeserver/app.py calls `wire_federation_sender(hs)` once, after building the services)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from federation.transactions import send_transaction
from homeserver.peering.inbound_edus import InboundEdus
from homeserver.peering.outbound import BUS_KIND, FederationOutbound
from homeserver.peering.sender import FederationSender
from homeserver.storage.events import StoredEvent

if TYPE_CHECKING:
    from homeserver.app import Homeserver


def wire_federation_sender(hs: Homeserver) -> None:
    async def send(destination: str, txn_id: str, body: dict[str, Any]) -> dict[str, Any]:
        # hs.federation may be replaced (tests hand it an in-memory transport): looked up per call.
        return await send_transaction(hs.federation.client, destination, txn_id, body)

    hs.federation_sender = FederationSender(hs.stores, hs.server_name, send)
    out = FederationOutbound(hs.stores, hs.server_name, hs.bus, hs.federation_sender, hs.config.federation.enabled,
                             hs.members)
    hs.federation_outbound = out
    hs.federation_sender.on_start = out.queue_missed_events
    hs.inbound_edus = InboundEdus(hs.stores, hs.server_name, hs.fanout, hs.receipts, hs.to_device, hs.keys)

    # Local events: after the fan-out's wake-ups, into the destinations' queues.
    wake = hs.persister.on_persisted

    async def persisted(ev: StoredEvent) -> None:
        if wake is not None:
            await wake(ev)
        await out.event_persisted(ev)

    hs.persister.on_persisted = persisted
    hs.fanout.bus_handlers[BUS_KIND] = out.on_bus_message
    hs.fanout.on_typing = out.typing
    hs.fanout.on_local_presence = out.presence_changed
    hs.receipts.on_receipt = out.receipt
    hs.to_device.on_remote = out.to_device
    hs.keys.on_device_change = out.device_list_changed
    hs.keys.cross_signing.on_public_keys = out.signing_keys_changed
    wire_transactions(hs)


def wire_transactions(hs: Homeserver) -> None:
    """Inbound transactions: EDUs to the registry, and a transaction from a destination we owe
    something resets its backoff; joins accepted through send_join are passed on. (Again after
    hs.transactions or hs.remote_joins is rebuilt.)"""
    hs.transactions.edu_handler = hs.inbound_edus.handle
    hs.transactions.on_origin_seen = hs.federation_sender.destination_up
    hs.remote_joins.on_join_accepted = hs.federation_outbound.join_accepted
