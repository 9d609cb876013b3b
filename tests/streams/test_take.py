"""streams.take: a take is filled by the stream's processor and emptied by the agent.

Pure asyncio with a stand-in for the stream (what `_Buffer` uses of it: the current
event, ack, wait, the loop, crash): events are buffered in order, a full buffer holds
the next one until the take is written, a take being written lets nothing in, and the
events of a take are acked only when it is released, then the buffer fills again. The
pipeline tests (tests/e2e, tests/scenarios) run the whole stream on the real broker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

import faust

from streams import take
from streams.take import LedgerStream, _Buffer


class StandIn:
    def __init__(self) -> None:
        self.current_event = None
        self.acked: list = []
        self.loop = asyncio.get_running_loop()
        self.log = logging.getLogger("test")
        self.crashed: list = []

    async def ack(self, event) -> bool:
        self.acked.append(event)
        return True

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


async def added(buffer: _Buffer, stream: StandIn, event: str) -> asyncio.Task:
    stream.current_event = event
    task = asyncio.ensure_future(buffer.add(event))
    await asyncio.sleep(0)
    return task


async def test_events_are_buffered_in_order_and_acked_only_on_release():
    stream = StandIn()
    buffer = _Buffer(stream, max_=10)
    for name in ("e1", "e2"):
        assert (await added(buffer, stream, name)).done()
    assert buffer.events == ["e1", "e2"] and buffer.nonempty.is_set() and not buffer.full.is_set()
    buffer.hold()
    held = await added(buffer, stream, "e3")
    assert not held.done() and buffer.events == ["e1", "e2"]  # nothing joins a take being written
    assert stream.acked == []
    await buffer.release()
    await asyncio.sleep(0)
    assert stream.acked == ["e1", "e2"]
    assert held.done() and buffer.events == ["e3"]


async def test_a_full_buffer_holds_the_next_event_until_the_take_is_released():
    stream = StandIn()
    buffer = _Buffer(stream, max_=2)
    await added(buffer, stream, "e1")
    second = await added(buffer, stream, "e2")
    assert buffer.full.is_set() and not second.done()  # waits for the take to be consumed
    buffer.hold()
    await buffer.release()
    await asyncio.sleep(0)
    assert second.done() and stream.acked == ["e1", "e2"] and buffer.events == []
    assert not buffer.full.is_set() and not buffer.nonempty.is_set()


async def test_an_event_missing_crashes_the_stream_like_faust():
    stream = StandIn()
    buffer = _Buffer(stream, max_=2)
    stream.current_event = None
    await buffer.add("value")
    assert isinstance(stream.crashed[0], RuntimeError)


def test_the_stream_is_faust_s_with_only_take_events_replaced():
    assert issubclass(LedgerStream, faust.Stream)
    assert [n for n, v in vars(LedgerStream).items() if callable(v) and not n.startswith("__")] == ["take_events"]
    ours = inspect.signature(LedgerStream.take_events).parameters
    theirs = inspect.signature(faust.Stream.take_events).parameters
    assert list(ours) == list(theirs)
    # What the method relies on inside Faust is still there.
    source = inspect.getsource(faust.Stream.take_events)
    for piece in ("self.add_processor(", "self._enable_passive(", "self.enable_acks = False", "await self.ack(event)"):
        assert piece in source, piece
    assert take.LINGER_SECONDS < 0.5
