"""The outbound federation sender: one persisted queue per destination, sent as transactions.

- What to send is in the database (`federation_queue`): a restart loses nothing.
- Before a transaction is sent, its ID, body and the queue rows it carries are recorded; until
  the destination answers, every retry (after a failure or a restart) sends that same ID and
  body, so the destination's per-transaction deduplication holds.
- A destination that fails is retried with exponential backoff (capped); a request from that
  destination (it is evidently up) resets the backoff.
- Catch-up: when a destination has fallen far behind, only the newest queued PDU of each room is
  sent; the destination fetches the gap with get_missing_events / backfill (as Synapse does).
- Exactly one worker sends: the holder of the `federation-sender` lease (homeserver/lease.py).
  Other workers only write the queue and wake the holder on the bus; the holder also polls the
  queue every `poll_s`, so a lost wake-up costs a delay, never a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.lease import LeaderLease
from homeserver.protocol.transactions import MAX_EDUS, MAX_PDUS, retry_delay_ms, transaction_body
from homeserver.storage.federation_queue import DestinationState, QueuedRow
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.federation.sender")

#: (destination, transaction ID, body) -> the destination's answer. Raises TransactionRefused
#: when the destination will never take this transaction; any other error is retried.
SendTransaction = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]

#: Typing notifications older than this are not worth delivering after an outage.
TYPING_STALE_MS = 30_000


class TransactionRefused(Exception):
    """The destination answered that it will not take this transaction (a 4xx other than a
    rate limit or an authentication problem): it is dropped rather than retried forever."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _superseded_key(row: QueuedRow) -> tuple[str, ...] | None:
    """Rows with the same key say the same thing newer: only the last one is worth sending."""
    c = row.content or {}
    if row.edu_type == "m.typing":
        return ("m.typing", str(c.get("room_id")), str(c.get("user_id")))
    if row.edu_type == "m.presence" and isinstance(c.get("push"), list) and len(c["push"]) == 1 \
            and isinstance(c["push"][0], dict):
        return ("m.presence", str(c["push"][0].get("user_id")))
    return None


def _current_edus(rows: list[QueuedRow], now: int) -> list[QueuedRow]:
    """The EDUs of a batch still worth sending: typing and presence only in their latest state
    (a backlog after an outage holds many), typing not at all once stale."""
    last: dict[tuple[str, ...], int] = {}
    for r in rows:
        key = _superseded_key(r)
        if key is not None:
            last[key] = r.id
    out = []
    for r in rows:
        key = _superseded_key(r)
        if key is not None and last[key] != r.id:
            continue
        if r.edu_type == "m.typing" and now - r.created_ts > TYPING_STALE_MS:
            continue
        out.append(r)
    return out


class FederationSender:
    def __init__(self, stores: Stores, server_name: str, send: SendTransaction, *,
                 base_backoff_ms: int = 1_000, max_backoff_ms: int = 60_000, catchup_threshold: int = 200,
                 poll_s: float = 5.0, lease_retry_s: float = 2.0) -> None:
        self.stores = stores
        self.server_name = server_name
        self._send = send
        self.base_backoff_ms = base_backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.catchup_threshold = catchup_threshold
        self.poll_s = poll_s
        self.lease = LeaderLease(stores.db, "federation-sender", retry_s=lease_retry_s, check_s=lease_retry_s)
        self.running = False
        self.transactions_sent = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._poke = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        #: Run each time this worker takes the sender role, before sending (the outbound side's
        #: `queue_missed_events`: local events committed but never queued).
        self.on_start: Callable[[], Awaitable[object]] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Compete for the sender role in the background, for as long as this worker runs."""
        if self._main is None:
            self._main = asyncio.get_running_loop().create_task(self.lease.run_forever(self._run))

    async def stop(self) -> None:
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
            self._main = None

    async def _run(self) -> None:
        """The work done while holding the lease: keep a loop per destination with work."""
        self.running = True
        log.info("federation sender running on this worker")
        try:
            if self.on_start is not None:
                try:
                    await self.on_start()
                except Exception:
                    log.exception("could not queue the local events missed before this start")
            while True:
                for destination in await self.stores.federation_queue.destinations_with_work():
                    self._ensure(destination)
                self._poke.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), self.poll_s)
        finally:
            self.running = False
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    # ------------------------------------------------------------------ wake-ups

    def wake(self, destinations: list[str] | set[str]) -> None:
        """New work for these destinations (queued here or, through the bus, on another worker)."""
        if not self.running:
            return
        for d in destinations:
            if d != self.server_name:
                self._ensure(d)
                self._wakes[d].set()

    async def destination_up(self, destination: str) -> None:
        """The destination just talked to us: retry it now rather than after its backoff."""
        state = await self.stores.federation_queue.state(destination)
        if state.failures:
            await self.stores.federation_queue.reset_backoff(destination)
            self.wake([destination])

    def _ensure(self, destination: str) -> None:
        self._wakes.setdefault(destination, asyncio.Event())
        task = self._tasks.get(destination)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._destination_loop(destination))
            self._tasks[destination] = task

    # ------------------------------------------------------------------ one destination

    async def _destination_loop(self, destination: str) -> None:
        wake = self._wakes[destination]
        try:
            while True:
                wake.clear()
                state = await self.stores.federation_queue.state(destination)
                wait_ms = state.retry_at_ts - _now_ms()
                if wait_ms > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait_ms / 1000)
                    continue
                if state.txn_id is None:
                    state = await self._next_transaction(destination)
                    if state.txn_id is None:
                        if wake.is_set():
                            continue  # something was queued while we looked
                        return
                await self._deliver(destination, state)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("federation sender for %s failed; the poll restarts it", destination)
        finally:
            if self._tasks.get(destination) is asyncio.current_task():
                del self._tasks[destination]

    async def _next_transaction(self, destination: str) -> DestinationState:
        """Take the next batch off the destination's queue and record it as the transaction in
        flight (empty state when there is nothing to send)."""
        q = self.stores.federation_queue
        if await q.count(destination, "pdu") > self.catchup_threshold:
            dropped = await q.keep_newest_pdu_per_room(destination)
            log.info("catching up %s: sending the newest event of each room, %d older left to it",
                     destination, dropped)
        pdu_rows = await q.pending(destination, "pdu", MAX_PDUS)
        edu_rows = await q.pending(destination, "edu", MAX_EDUS)
        if not pdu_rows and not edu_rows:
            return DestinationState(None, None, [], 0, 0)
        now = _now_ms()
        events = await self.stores.events.get_many([r.event_id for r in pdu_rows if r.event_id])
        pdus = []
        for r in pdu_rows:
            ev = events.get(r.event_id or "")
            if ev is not None:
                pdus.append({k: v for k, v in ev.pdu.items() if k != "unsigned"})
        edus = [{"edu_type": r.edu_type, "content": r.content} for r in _current_edus(edu_rows, now)]
        ids = [r.id for r in pdu_rows] + [r.id for r in edu_rows]
        if not pdus and not edus:
            await q.delete(ids)
            return DestinationState(None, None, [], 0, 0)
        body = transaction_body(self.server_name, now, pdus, edus)
        txn_id = await q.start_txn(destination, str(now), body, ids)
        return DestinationState(txn_id, body, ids, 0, 0)

    async def _deliver(self, destination: str, state: DestinationState) -> None:
        assert state.txn_id is not None and state.txn_body is not None
        q = self.stores.federation_queue
        try:
            answer = await self._send(destination, state.txn_id, state.txn_body)
        except asyncio.CancelledError:
            raise
        except TransactionRefused as e:
            log.warning("%s refused transaction %s (%s); dropping it", destination, state.txn_id, e)
            await q.finish_txn(destination, state.txn_queue_ids)
            return
        except Exception as e:  # noqa: BLE001 - any failure to deliver is retried later
            failures = state.failures + 1
            delay = retry_delay_ms(failures, self.base_backoff_ms, self.max_backoff_ms)
            log.info("transaction %s to %s failed (%s); retry %d in %d ms", state.txn_id, destination,
                     e, failures, delay)
            await q.record_failure(destination, failures, _now_ms() + delay)
            return
        for event_id, result in (answer.get("pdus") or {}).items():
            if isinstance(result, dict) and result.get("error"):
                log.info("%s did not take %s: %s", destination, event_id, result["error"])
        await q.finish_txn(destination, state.txn_queue_ids)
        self.transactions_sent += 1
