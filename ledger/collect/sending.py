"""From the spool to the member's own topic, until the broker acknowledges each event.

Events go as batch records through the ledger's `Publisher` (`streams.publish`, the code
`gpuledger ingest` and the API send with): each record is in Kafka whole or not at all,
on `gpu.usage.<member>` (SPEC.md, "Who sent it"), with the member's credentials. Only
once the broker has acknowledged a record are its events deleted from the spool; a send
that fails or takes longer than `SEND_TIMEOUT_SECONDS` leaves them there, drops the
producer (a new one is made for the next try) and waits, doubling up to
`MAX_BACKOFF_SECONDS`. A record that reached the broker but whose acknowledgement was
lost is sent again: the same bytes, a duplicate in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Protocol

from ledger.collect.clock import _sleep
from ledger.collect.metrics import Metrics
from ledger.collect.spool import Spool
from ledger.domain.errors import LedgerError

RECORD_EVENTS = 1000  # events per batch record: ~0.5 MB, far inside the 10,000 / 16 MiB bounds
SEND_TIMEOUT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
IDLE_SECONDS = 1.0

log = logging.getLogger("gpuledger.collect")


def ingest_id_of(node: str) -> str:
    """The ingest id the node's events are counted under (`[A-Za-z0-9._:-]{1,64}`)."""
    return ("collect." + re.sub(r"[^A-Za-z0-9._:-]", "-", node))[:64]


class EventSender(Protocol):
    """What the agent needs of the ledger's `Publisher` (`ledger.domain.ports`): one record
    of events at a time, and closing."""

    async def send_events(self, raws: list[bytes], ingest_id: str, sender: str | None = None) -> int: ...

    async def close(self) -> None: ...


class Sender:
    def __init__(
        self, spool: Spool, open_publisher: Callable[[], EventSender], member: str, node: str, metrics: Metrics,
        record_events: int = RECORD_EVENTS, timeout_seconds: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.spool, self.open_publisher, self.member, self.metrics = spool, open_publisher, member, metrics
        self.ingest_id, self.record_events, self.timeout_seconds = ingest_id_of(node), record_events, timeout_seconds
        self.publisher: EventSender | None = None

    async def send_some(self) -> int:
        """Send the oldest waiting events as one record; the number the broker acknowledged.
        Raises what the send raised (the events stay in the spool)."""
        waiting = self.spool.take(self.record_events)
        if not waiting:
            return 0
        if self.publisher is None:
            self.publisher = self.open_publisher()
        try:
            await asyncio.wait_for(
                self.publisher.send_events([value for _, value in waiting], self.ingest_id, sender=self.member),
                self.timeout_seconds,
            )
        except BaseException:
            await self._drop_publisher()
            raise
        self.spool.acknowledge(seq for seq, _ in waiting)
        self.metrics.sent.inc(len(waiting))
        return len(waiting)

    async def _drop_publisher(self) -> None:
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            try:
                await asyncio.wait_for(publisher.close(), 5)
            except Exception:  # a producer that failed may fail to stop too: it is dropped anyway
                log.debug("closing a failed producer", exc_info=True)

    async def drain(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set, backing off while the broker is away."""
        backoff = 1.0
        while not stop.is_set():
            try:
                sent = await self._unless_stopped(stop)
                backoff = 1.0
            except (LedgerError, OSError, TimeoutError) as exc:
                self.metrics.send_errors.inc()
                log.warning("collect: send failed (%s); %d events wait in the spool, retrying in %.0f s",
                            exc, self.spool.depth(), backoff)
                await _sleep(backoff, stop)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if sent < self.record_events:
                await _sleep(IDLE_SECONDS, stop)

    async def _unless_stopped(self, stop: asyncio.Event) -> int:
        """`send_some`, abandoned when `stop` is set (a send to a broker that does not answer
        must not hold up SIGTERM: its events stay in the spool, and `flush` tries again)."""
        sending = asyncio.ensure_future(self.send_some())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sending, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not sending.done():
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            return 0
        return sending.result()

    async def flush(self, deadline_seconds: float) -> bool:
        """At shutdown: try to send everything within the deadline; whether the spool is empty."""
        try:
            async with asyncio.timeout(deadline_seconds):
                while await self.send_some():
                    pass
        except (LedgerError, OSError, TimeoutError):
            self.metrics.send_errors.inc()
        return self.spool.depth() == 0

    async def close(self) -> None:
        await self._drop_publisher()
