"""A Faust stream whose `take_events` does not wait out its window when records wait.

Faust's `take_events(max_, within)` yields a take when `max_` events are buffered or
`within` seconds have passed. While the agent writes a take the stream stops filling
the buffer; once the take is acked, the next one waits until `max_` events or `within`
again. Batch records carry hundreds of events each, so a worker's takes never reach
`max_` records (its bound in bytes stops them first) and every take waited out the full
window, 0.5 s, with the records already fetched: under a backlog a worker idled part of
every cycle, and a single event became visible only after half a second.

`LedgerStream.take_events` has the same contract (the same events, acked only after the
loop body returns, the same stop and crash behaviour), and waits differently: for the
first event of a take at most `within` (then it looks again, so a stop is seen), then,
once an event is buffered, at most `LINGER_SECONDS` more for the take to fill up. The
records a worker fetched while writing the previous take are in the next one at once.
The body of the method is Faust's own (faust/streams.py, 0.11-0.15) with that change,
split into a small class; `tests/streams/test_take.py` holds it to the contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import faust
from faust.streams import _tracks_buffer_agen
from faust.types import EventT
from mode import want_seconds
from mode.utils.aiter import aiter
from mode.utils.futures import notify

# How long a take that has events waits for more (records fetched meanwhile join it).
LINGER_SECONDS = 0.05


class _Buffer:
    """The events of the take being filled, and the signals between the stream's
    processor (which adds) and the agent's loop (which takes)."""

    def __init__(self, stream: faust.Stream, max_: int) -> None:
        self.stream = stream
        self.max = max_
        self.events: list[EventT] = []
        self.nonempty = asyncio.Event()
        self.full = asyncio.Event()
        self.consumed = asyncio.Event()
        self.consuming: asyncio.Future | None = None

    async def add(self, value: Any) -> Any:
        """The stream's processor: buffer the current event; hold while a take is written
        or while the buffer is full."""
        try:
            if self.consuming is not None:
                try:
                    await self.consuming
                finally:
                    self.consuming = None
            event = self.stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            self.events.append(event)
            self.nonempty.set()
            if len(self.events) >= self.max:
                self.full.set()
                self.consumed.clear()
                await self.stream.wait(self.consumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Faust's own handling: crash the stream
            self.stream.log.exception("Error adding to take buffer: %r", exc)
            await self.stream.crash(exc)
        return value

    def hold(self) -> None:
        """A take is being written: nothing joins the buffer meanwhile."""
        self.consuming = self.stream.loop.create_future()

    async def release(self) -> None:
        """The take was written: ack its events, then let the buffer fill again."""
        taken, self.events = self.events, []
        for event in taken:
            await self.stream.ack(event)
        if self.consuming is not None:
            notify(self.consuming)
        self.full.clear()
        self.nonempty.clear()
        self.consumed.set()


class LedgerStream(faust.Stream):
    """`faust.Stream` whose `take_events` lingers `LINGER_SECONDS` instead of `within`."""

    @_tracks_buffer_agen
    async def take_events(self, max_: int, within: Any) -> AsyncGenerator[Sequence[EventT], None]:
        buffer = _Buffer(self, max_)
        timeout = want_seconds(within) if within else None
        stream_enable_acks = self.enable_acks
        self.enable_acks = False  # acked here, after the body returns
        self.add_processor(buffer.add)
        self._enable_passive(aiter(self.channel))
        try:
            while not self.should_stop:
                if not buffer.events:
                    await self.wait_for_stopped(buffer.nonempty, timeout=timeout)
                if buffer.events and len(buffer.events) < max_:
                    await self.wait_for_stopped(buffer.full, timeout=LINGER_SECONDS)
                if buffer.events:
                    buffer.hold()
                    try:
                        yield list(buffer.events)
                    finally:
                        await buffer.release()
        finally:
            self.enable_acks = stream_enable_acks
            self._processors.remove(buffer.add)
