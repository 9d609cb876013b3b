"""streams.faust_ext: the eager message callback keeps Faust's semantics; the byte bound.

Pure asyncio, no broker: a coroutine that finishes in its first step gives its result
without a task; one that suspends goes on, as the same coroutine, inside Faust's own
`wait_first`, which still returns when flow is suspended (a rebalance). Records are
held back while the unacked ones exceed the bound, and let through as acks make room.
The last test checks the piece of Faust this relies on, so that an upgrade of Faust
that changes it fails here first.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings

import pytest
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams import faust_ext
from streams.faust_ext import LedgerApp, LedgerConsumer, RawSchema, run_eagerly


async def finishes_at_once(log: list) -> str:
    log.append("ran")
    return "done"


async def waits_for(future: asyncio.Future, log: list) -> str:
    log.append("before")
    try:
        value = await future
    except ValueError as exc:
        log.append(f"caught {exc}")
        return "recovered"
    finally:
        log.append("finally")
    await asyncio.sleep(0)  # a bare yield after the first suspension
    log.append(f"after {value}")
    return f"got {value}"


async def test_a_coroutine_that_does_not_wait_finishes_in_place():
    log: list = []
    tasks_before = len(asyncio.all_tasks())
    finished, result = run_eagerly(finishes_at_once(log))
    assert (finished, result, log) == (True, "done", ["ran"])
    assert len(asyncio.all_tasks()) == tasks_before


async def suspended_in_a_task() -> tuple[asyncio.Future, asyncio.Task, list]:
    """waits_for() run eagerly to its first suspension, then continued in a task."""
    future = asyncio.get_running_loop().create_future()
    log: list = []
    finished, continuation = run_eagerly(waits_for(future, log))
    assert not finished and log == ["before"]
    task = asyncio.ensure_future(continuation)
    await asyncio.sleep(0)
    assert not task.done()
    return future, task, log


async def test_a_suspended_coroutine_goes_on_as_itself():
    future, task, log = await suspended_in_a_task()
    future.set_result(7)
    assert await task == "got 7"
    assert log == ["before", "finally", "after 7"]


async def test_an_exception_reaches_the_suspended_coroutine():
    future, task, log = await suspended_in_a_task()
    future.set_exception(ValueError("bad"))
    assert await task == "recovered"
    assert log == ["before", "caught bad", "finally"]


async def test_cancelling_the_continuation_cancels_the_coroutine():
    future, task, log = await suspended_in_a_task()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["before", "finally"]
    assert future.cancelled()


async def test_an_exception_in_the_first_step_propagates():
    async def fails() -> None:
        raise KeyError("first step")

    with pytest.raises(KeyError):
        run_eagerly(fails())


@pytest.fixture
async def consumer():
    # Built inside the test's event loop, which Faust's services bind to.
    app = LedgerApp("test-faust-ext", broker="kafka://127.0.0.1:1", store="memory://")
    return app.consumer


async def test_the_ledger_app_uses_the_eager_consumer(consumer):
    assert isinstance(consumer, LedgerConsumer)


async def test_wait_first_returns_the_callback_result_and_closes_the_other(consumer):
    log: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail
        results = await consumer.wait_first(finishes_at_once(log), consumer.suspend_flow.wait())
    assert (results.results, results.stopped, log) == (["done"], False, ["ran"])


async def waiting_in_wait_first(consumer) -> tuple[asyncio.Future, asyncio.Task, list]:
    """The drain's call with a callback that suspends, still waiting."""
    future = asyncio.get_running_loop().create_future()
    log: list = []
    waiting = asyncio.ensure_future(
        consumer.wait_first(waits_for(future, log), consumer.suspend_flow.wait())
    )
    await asyncio.sleep(0.01)
    assert not waiting.done()
    return future, waiting, log


async def test_wait_first_on_a_waiting_callback_returns_when_flow_is_suspended(consumer):
    """As in Faust: a callback blocked on flow control does not hold up a rebalance."""
    _, waiting, log = await waiting_in_wait_first(consumer)
    consumer.suspend_flow.set()
    results = await asyncio.wait_for(waiting, 5)
    assert results.results == [True]  # the flow event won
    await asyncio.sleep(0)
    assert log == ["before", "finally"]  # and the callback was cancelled, as Faust does


async def test_wait_first_on_a_waiting_callback_returns_its_result(consumer):
    future, waiting, _ = await waiting_in_wait_first(consumer)
    future.set_result(3)
    results = await asyncio.wait_for(waiting, 5)
    assert results.results == ["got 3"]


def test_raw_schema_hands_over_the_bytes():
    class Message:
        key, value = b"GPU-1", b'{"a": 1}'

    schema = RawSchema(key_type=bytes, value_type=bytes)
    assert schema.loads_key(None, Message) == b"GPU-1"
    assert schema.loads_value(None, Message) == b'{"a": 1}'


def test_faust_still_calls_wait_first_with_the_callback_first():
    """The one call of Faust's that LedgerConsumer.wait_first is written for."""
    source = inspect.getsource(FaustConsumer._drain_messages)
    assert "self.wait_first(" in source
    assert "callback(message), self.suspend_flow.wait()" in " ".join(source.split())
    assert LedgerConsumer.wait_first is not FaustConsumer.wait_first


def message(offset: int, size: int) -> ConsumerMessage:
    return ConsumerMessage("gpu.usage", 0, offset, 0.0, 0, [], b"GPU-1", b"x" * size, None)


@pytest.fixture
async def bounded(consumer, monkeypatch):
    monkeypatch.setattr(faust_ext, "RECORD_OVERHEAD_BYTES", 0)  # sizes below are the values'
    delivered: list = []

    async def deliver(msg):
        delivered.append(msg.offset)

    consumer.deliver = deliver
    consumer.max_unacked_bytes = 100
    return consumer, delivered


async def test_records_within_the_bound_are_delivered_in_place(bounded):
    consumer, delivered = bounded
    kept = [message(i, 40) for i in range(3)]  # 120 bytes: the third goes over, and is let in
    for msg in kept:
        finished, _ = run_eagerly(consumer.callback(msg))
        assert finished
    assert delivered == [0, 1, 2] and consumer.unacked_bytes == 120


async def test_a_record_waits_while_the_unacked_exceed_the_bound_until_an_ack(bounded):
    consumer, delivered = bounded
    kept = [message(i, 60) for i in range(2)]
    for msg in kept:
        await consumer.callback(msg)
    waiting = asyncio.ensure_future(consumer.callback(message(2, 10)))
    await asyncio.sleep(0.05)
    assert not waiting.done() and delivered == [0, 1]
    consumer.ack(kept[0])  # 60 unacked bytes left: room
    await asyncio.wait_for(waiting, 5)
    assert delivered == [0, 1, 2] and consumer.unacked_bytes == 70
    consumer.ack(kept[0])  # a second ack of the same record frees nothing
    assert consumer.unacked_bytes == 70


async def test_one_record_larger_than_the_bound_passes_alone(bounded):
    consumer, delivered = bounded
    big = message(0, 1000)
    finished, _ = run_eagerly(consumer.callback(big))
    assert finished and delivered == [0]
    waiting = asyncio.ensure_future(consumer.callback(message(1, 1)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    consumer.ack(big)
    await asyncio.wait_for(waiting, 5)
    assert delivered == [0, 1]


async def test_records_dropped_without_an_ack_do_not_hold_the_bound(bounded, monkeypatch):
    """A rebalance drops buffered records unacked: the recount finds them gone."""
    monkeypatch.setattr(faust_ext, "ROOM_RECHECK_SECONDS", 0.05)
    consumer, delivered = bounded
    await consumer.callback(message(0, 500))  # its only reference is dropped at once
    assert consumer.unacked_bytes == 500
    await asyncio.wait_for(consumer.callback(message(1, 10)), 5)
    assert delivered == [0, 1] and consumer.unacked_bytes == 10


def test_a_record_counts_its_value_and_the_objects_around_it():
    assert faust_ext._footprint(message(0, 300)) == faust_ext.RECORD_OVERHEAD_BYTES + 300
    empty = ConsumerMessage("gpu.usage", 0, 1, 0.0, 0, [], None, None, None)
    assert faust_ext._footprint(empty) == faust_ext.RECORD_OVERHEAD_BYTES


async def test_a_failing_first_step_closes_the_flow_wait_and_raises(consumer):
    async def fails() -> None:
        raise KeyError("first step")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyError):
            await consumer.wait_first(fails(), consumer.suspend_flow.wait())
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_waiting_for_room_in_the_eager_step_leaves_the_fetcher_running(bounded, monkeypatch):
    """The wait for room runs inside the task that drains the fetcher (as in Faust's
    _drain_messages): its timer must never cancel that task."""
    monkeypatch.setattr(faust_ext, "ROOM_RECHECK_SECONDS", 0.05)
    consumer, delivered = bounded

    async def drain(offsets):
        for offset in offsets:
            await consumer.wait_first(consumer.callback(message(offset, 500)), consumer.suspend_flow.wait())
        return "drained"

    # Each record is over the bound alone and dropped unacked: the next waits for a recount.
    fetcher = asyncio.ensure_future(drain(range(4)))
    assert await asyncio.wait_for(fetcher, 5) == "drained"
    assert delivered == [0, 1, 2, 3]


async def test_a_recount_that_finds_room_wakes_the_waiting_record(bounded):
    consumer, delivered = bounded
    held = message(0, 500)
    await consumer.callback(held)
    waiting = asyncio.ensure_future(consumer.callback(message(1, 10)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    held.acked = True  # acked behind the consumer's back, as Faust's compiled iterator does
    assert consumer.recount_unacked_bytes() == 0
    await asyncio.wait_for(waiting, 0.5)  # well before the periodic recount
    assert delivered == [0, 1]


# -- the direct path -----------------------------------------------------------------------


@pytest.fixture
async def direct(monkeypatch):
    monkeypatch.setattr(faust_ext, "RECORD_OVERHEAD_BYTES", 0)
    app = LedgerApp("test-direct", broker="kafka://127.0.0.1:1", store="memory://", direct=True)
    consumer = app.consumer
    consumer.max_unacked_bytes = 100
    return consumer


def on(partition: int, offset: int, size: int = 10) -> ConsumerMessage:
    return ConsumerMessage("gpu.usage", partition, offset, 0.0, 0, [], b"GPU-1", b"x" * size, None)


async def test_the_direct_path_hands_records_to_the_batches_in_place_and_never_to_the_streams(direct):
    direct.deliver = None  # Faust's conductor must not be called
    for offset in range(3):
        finished, _ = run_eagerly(direct.callback(on(0, offset)))
        assert finished
    assert [m.offset for m in direct.batches.records] == [0, 1, 2] and direct.unacked_bytes == 30


async def test_a_take_is_the_records_in_order_up_to_its_size_and_waits_only_within(direct):
    batches = direct.batches
    assert await batches.take(10, within=0.01, linger=0) == []  # nothing came: the caller looks up
    for offset in range(5):
        await direct.callback(on(0, offset))
    assert [m.offset for m in await batches.take(3, within=1, linger=0)] == [0, 1, 2]
    loop = asyncio.get_running_loop()
    late = loop.call_later(0.02, lambda: batches.put(on(0, 5)))
    started = loop.time()
    taken = await batches.take(10, within=1, linger=0.5)  # records were waiting: no linger
    assert [m.offset for m in taken] == [3, 4] and loop.time() - started < 0.4
    taken = await batches.take(10, within=1, linger=0.05)  # waited for the first, then lingers
    assert [m.offset for m in taken] == [5]
    first = loop.call_later(0.01, lambda: batches.put(on(0, 6)))
    later = loop.call_later(0.03, lambda: batches.put(on(0, 7)))
    taken = await batches.take(10, within=1, linger=0.1)  # lingers: the later one joins
    first.cancel(), late.cancel(), later.cancel()
    assert [m.offset for m in taken] == [6, 7]


async def test_records_count_against_the_bound_until_acked_and_a_revoked_partition_is_dropped(direct):
    first = [on(0, 0, 60), on(1, 0, 60)]
    for msg in first:
        await direct.callback(msg)
    waiting = asyncio.ensure_future(direct.callback(on(0, 1, 10)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    taken = await direct.batches.take(10, within=1, linger=0)
    assert not waiting.done()  # taken is not written: still unacked
    direct.ack(taken[0])
    await asyncio.wait_for(waiting, 5)
    assert direct.batches.drop({TP("gpu.usage", 0)}) == 1  # the offset 1 of partition 0
    assert list(direct.batches.records) == []


async def test_the_worker_consumer_waits_at_most_the_app_fetch_wait():
    """Faust fixes 1500 ms; the test broker answers a waiting fetch only at its end."""
    app = LedgerApp("test-fetch-wait", broker="kafka://127.0.0.1:1", store="memory://", fetch_max_wait_ms=100)
    thread = app.consumer._thread
    assert isinstance(thread, faust_ext.LedgerConsumerThread)
    aiokafka_consumer = thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == 100
    finally:
        await aiokafka_consumer.stop()
    # ...which the installed aiokafka reads when it builds its fetcher.
    from aiokafka import AIOKafkaConsumer

    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


async def test_without_a_fetch_wait_the_app_keeps_faust_own():
    app = LedgerApp("test-fetch-wait-default", broker="kafka://127.0.0.1:1", store="memory://")
    aiokafka_consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == 1500
    finally:
        await aiokafka_consumer.stop()


async def test_offsets_a_record_skips_after_offset_0_count_as_acked(bounded):
    """A compressed batch the worker did not read is one record at the batch's last offset
    (streams.fetching). Faust adds the offsets it skips to its acks only when the offset it
    read last is truthy: after offset 0 its commits would wait for offsets 1-4 forever."""
    consumer, delivered = bounded
    tp = TP("gpu.usage", 0)
    consumer._read_offset[tp] = 0  # offset 0 was read
    await consumer.callback(message(5, 1))  # offsets 1 to 4 were one batch
    assert delivered == [5]
    consumer._acked[tp].extend([0, 5])
    assert consumer._new_offset(tp) == 6
    consumer._read_offset[tp] = 5
    await consumer.callback(message(6, 1))  # no gap: nothing added
    assert not consumer._gap[tp]


class RefusingConsumer:
    """An aiokafka consumer whose broker refuses every commit with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[dict] = []

    async def commit(self, offsets):
        self.asked.append(dict(offsets))
        raise self.error


def refusing_thread(monkeypatch, error: Exception):
    app = LedgerApp("test-commit", broker="kafka://127.0.0.1:1", store="memory://")
    thread = app.consumer._thread
    refusing = RefusingConsumer(error)
    crashes: list[BaseException] = []

    async def crash(exc):
        crashes.append(exc)

    monkeypatch.setattr(thread, "_ensure_consumer", lambda: refusing)
    monkeypatch.setattr(thread, "assignment", lambda: {TP("gpu.usage", 0)})
    monkeypatch.setattr(thread, "crash", crash)
    return thread, refusing, crashes


@pytest.mark.parametrize(
    "error",
    [
        CommitFailedError("the coordinator is loading"),
        IllegalStateError("no partitions assigned"),
        KafkaError("the broker answered with an unknown error"),
    ],
    ids=["commit-failed", "illegal-state", "other"],
)
async def test_a_commit_the_broker_refuses_keeps_the_worker_running(monkeypatch, error):
    thread, refusing, crashes = refusing_thread(monkeypatch, error)
    offsets = {TP("gpu.usage", 0): 12, TP("gpu.usage", 1): 7}  # partition 1 is not ours
    assert await thread._commit(offsets) is False
    assert crashes == []
    assert [{(tp.topic, tp.partition): o.offset for tp, o in asked.items()} for asked in refusing.asked] == [
        {("gpu.usage", 0): 12}
    ]
    # Faust's own commit ends the worker on the same refusal.
    assert await faust_aiokafka.AIOKafkaConsumerThread._commit(thread, offsets) is False
    assert crashes == [error]


async def test_a_cancelled_commit_is_still_a_cancellation(monkeypatch):
    thread, _, crashes = refusing_thread(monkeypatch, asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await thread._commit({TP("gpu.usage", 0): 1})
    assert crashes == []
