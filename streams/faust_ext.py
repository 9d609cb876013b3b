"""Faust's consumer, made cheaper per record and bounded in bytes, with the same semantics.

Measured on the Tansu test broker with an agent that only counts single-event records:
about 55 us of CPU per record with stock Faust (`python -m bench.pipeline`, phase d),
about 28 us with the first two changes below; the workers (`streams.app`) also take the
third, the direct path, and spend about 24 us a single-event record with the ledger's
work included.

- **The direct path** (`LedgerApp(direct=True)`, `Batches`): the consumer puts each
  record in a queue the agent takes lists from, instead of handing it to Faust's
  conductor, channel queue, Event, stream processors and per-record acks; the agent
  acks with `Consumer.ack` once a list is written. Faust still does what it is there
  for: group membership, assignment, fetching, flow control on rebalances and offset
  commits.

- **The eager message callback.** Faust's fetcher hands each record to the conductor
  with `Service.wait_first(callback(message), suspend_flow.wait())`, which wraps the
  callback in a task and waits for the first of four tasks (callback, flow suspended,
  service stopped, service crashed), then cancels the other three: five tasks per
  record. The callback almost never waits (it only does when flow control is
  suspended during a rebalance, or a stream's buffer is full). `LedgerConsumer` runs it
  one step in place; when it completes in that step, which is the usual case, no task
  is created. When it suspends, the suspended coroutine continues inside Faust's own
  `wait_first`, exactly as before, so a rebalance or a stop behaves as in Faust.
- **A shorter fetch wait.** Faust creates its aiokafka consumer with a fixed
  `fetch_max_wait_ms=1500`. Apache Kafka answers a waiting fetch as soon as a record
  arrives, but the test broker (Tansu) answers only when the wait is over: a record
  produced to an idle partition reached the worker 0.5-1.2 s later (measured with a
  plain aiokafka consumer on Tansu: 1500 ms -> 480-1230 ms per record, 100 ms -> 9-36
  ms). `LedgerApp(fetch_max_wait_ms=...)` sets it (`streams.app`: 100 ms); on Kafka it
  only costs idle consumers ten empty fetches a second.
- **`RawSchema`**: the usage topic's keys and values are bytes; this schema hands
  them over as they are instead of through the serializer registry (about 2 us).
- **A bound in bytes.** Faust bounds what it fetches ahead by a number of records
  (`stream_buffer_maxsize`), and a take by a number of events. Records differ in size
  by three orders of magnitude (one event, or a batch of hundreds), so a backlog of
  batch records filled a worker with most of it (644 MiB for 2 million events). The
  consumer counts the bytes of the records it has handed to the streams and not yet
  seen acked (the value plus `RECORD_OVERHEAD_BYTES` for Faust's objects), and holds
  the next record back while they exceed `max_unacked_bytes`.
  The agent acks a take once it is written (`Consumer.ack`), which makes room; a take never waits for more than its `within`, so
  this cannot deadlock. One record is always let through, however large. Records that
  leave without an ack (a rebalance clears the streams' buffers; Faust skips records of
  an old generation) would hold room: the count is recomputed from the records still
  alive after every assignment and whenever the consumer has waited a second. Not for
  agents that iterate a stream with acks on: Faust's compiled iterator acks without
  calling `Consumer.ack`, so room would only come back by those recounts.
- **Offsets a record skips, after offset 0.** A record may skip offsets: a compressed
  batch the worker did not decompress is one record at the batch's last offset
  (`streams.fetching`). Faust counts skipped offsets as acked (a "gap") so that its
  commits pass them, except when the offset it read last is 0 (it tests it for truth):
  its commits of that partition would stop there for good. The callback adds that gap.

- **A refused commit is not a crash.** Faust ends the worker when the broker refuses an
  offset commit for any reason but "already rebalanced". The ledger's own positions,
  written with each batch, make a re-read harmless, so `LedgerConsumerThread` logs the
  refusal and keeps its partitions; the next commit tries again.

The eager first step runs inside the fetcher's own task, so whatever runs in it sees
that task as `asyncio.current_task()`, and a context variable it sets stays set for
the next records. Nothing on Faust's delivery path depends on either (the conductor,
flow control, the producer buffer, the channel's queue); code added to that path must
not either: no `asyncio.timeout()` or `asyncio.wait_for()` in it (from Python 3.12
they cancel the current task, which would be the fetcher).

`LedgerApp` is a `faust.App` whose consumer transport is `Transport` below; producers
are Faust's own. pyproject.toml keeps Faust below 0.16 because the call to `wait_first`
is internal to its consumer: `tests/streams/test_faust_ext.py` checks that call is still there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine, Generator, Mapping
from time import monotonic
from typing import Any
from weakref import WeakSet

import faust
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ConsumerMessage
from mode.services import WaitResults

log = logging.getLogger(__name__)


class _Continued:
    """Awaitable that continues a coroutine which was already run to its first suspension.

    `first` is what the coroutine yielded at that point (the future it waits for, or
    None for a bare yield). The task awaiting this object sees exactly the values the
    coroutine yields and sends and throws into it exactly what the task sends and throws,
    as `yield from` would have from the start.
    """

    __slots__ = ("coroutine", "first")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coroutine = coroutine
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self.coroutine
        value = self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task, passed on
                try:
                    value = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coroutine.send(sent)
                except StopIteration as stop:
                    return stop.value


async def continued(coroutine: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Continued(coroutine, first)


def run_eagerly(coroutine: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run a coroutine to its first suspension: (True, result) if it finished there,
    else (False, a coroutine that goes on from where it stopped). Exceptions propagate."""
    try:
        first = coroutine.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, continued(coroutine, first)


DEFAULT_MAX_UNACKED_BYTES = 64 << 20
ROOM_RECHECK_SECONDS = 1.0


# What a record in flight costs besides its value: Faust's message and event objects,
# its key and headers, the decoded event while a take is written. With 1 KB a worker
# peaked at 350 MiB under single-event records, with 2 KB at 300 MiB, at the same
# throughput (python -m bench.pipeline, phase b).
RECORD_OVERHEAD_BYTES = 2048


def _footprint(message: Any) -> int:
    value = message.value
    return RECORD_OVERHEAD_BYTES + (len(value) if value is not None else 0)


class LedgerConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer waits `fetch_max_wait_ms` at most
    for a fetch's records (Faust fixes 1500 ms; see above)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # Read by AIOKafkaConsumer.start(), which builds its Fetcher with it; checked
            # by tests/streams/test_faust_ext.py against the installed aiokafka.
            consumer._fetch_max_wait_ms = wait_ms
        return consumer

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        """Commit offsets to the broker; a commit the broker refuses is not a crash.

        Faust ends the whole worker when a commit fails for any reason but "already
        rebalanced" (the broker answering a member that is leaving or rejoining with
        another error, an illegal state). The ledger does not need the broker's offsets
        to count right: its own positions, written with each batch, make it skip what it
        reads again (`streams.positions`). A refused commit costs a re-read, so it is
        logged and tried again at the next commit, and the worker keeps its partitions.
        """
        consumer = self._ensure_consumer()
        assigned = self.assignment()
        committable = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        now = monotonic()
        try:
            self.tp_last_committed_at.update(dict.fromkeys(committable, now))
            await consumer.commit(
                {
                    faust_aiokafka.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "")
                    for tp, offset in committable.items()
                }
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a re-read, never a lost or doubled event
            log.warning(
                "the broker did not take the consumer's offsets (%r); the ledger's own "
                "positions skip what is read again, and the next commit tries again",
                exc,
            )
            return False
        return True


class LedgerMessage(ConsumerMessage):
    """Faust's message, with the offset from which its fetch read up to it without a gap
    (`streams.fetching.GuardedPartitionRecords`; None when unknown)."""

    __slots__ = ("contiguous_from",)


class LedgerConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer: the per-record callback run eagerly, and unacked
    records bounded in bytes (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_unacked_bytes: int = getattr(self.app, "max_unacked_bytes", DEFAULT_MAX_UNACKED_BYTES)
        self.unacked_bytes = 0
        self._in_flight: WeakSet = WeakSet()
        self._room: asyncio.Event | None = None
        self.deliver = self.callback  # Faust's conductor: hands a record to the streams
        in_flight_add = self._in_flight.add
        # The direct path (see `Batches`): records go to the agent without Faust's streams.
        self.batches: Batches | None = Batches() if getattr(self.app, "direct", False) else None
        put = self.batches.put if self.batches is not None else None
        read_offset = self._read_offset

        async def callback(message: Any) -> Any:
            if message.offset > 1 and read_offset[message.tp] == 0:
                await self._add_gap(message.tp, 1, message.offset - 1)  # offsets skipped after 0
            if self.unacked_bytes > self.max_unacked_bytes:
                await self._wait_for_room()
            in_flight_add(message)
            self.unacked_bytes += _footprint(message)
            if put is not None:
                return put(message)
            return await self.deliver(message)

        self.callback = callback

    def _to_message(self, tp: Any, record: Any) -> LedgerMessage:
        # As Faust's own (faust/transport/drivers/aiokafka.py), plus contiguous_from.
        timestamp = record.timestamp
        message = LedgerMessage(
            record.topic, record.partition, record.offset, None if timestamp is None else timestamp / 1000.0,
            record.timestamp_type, record.headers, record.key, record.value, record.checksum,
            record.serialized_key_size, record.serialized_value_size, tp,
            generation_id=self.app.consumer_generation_id,
        )
        message.contiguous_from = getattr(record, "contiguous_from", None)
        return message

    def _new_consumer_thread(self) -> LedgerConsumerThread:
        return LedgerConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_for_room(self) -> None:
        # Runs in the eager first step, inside the fetcher's task: a timer that sets the
        # event, not asyncio.wait_for, whose timeout would cancel the fetcher (3.12+).
        if self._room is None:
            self._room = asyncio.Event()
        room = self._room
        loop = asyncio.get_running_loop()
        while self.unacked_bytes > self.max_unacked_bytes:
            room.clear()
            timer = loop.call_later(ROOM_RECHECK_SECONDS, room.set)
            try:
                await room.wait()
            finally:
                timer.cancel()
            if self.unacked_bytes > self.max_unacked_bytes:
                self.recount_unacked_bytes()

    def flow_state(self) -> dict:
        """What decides whether this consumer fetches: for an operator's SIGUSR2 dump."""
        return {
            "flow_active": self.flow_active,
            "assignment": sorted(map(tuple, self.assignment())),
            "paused": sorted(map(tuple, self._paused_partitions)),
            "active": sorted(map(tuple, self._active_partitions or ())),
            "buffered": sorted(map(tuple, self._buffered_partitions)),
            "unacked_bytes": self.unacked_bytes,
            "max_unacked_bytes": self.max_unacked_bytes,
            "in_flight": len(self._in_flight),
            "queued": len(self.batches.records) if self.batches is not None else None,
        }

    def recount_unacked_bytes(self) -> int:
        """The exact figure, from the handed-over records still alive and unacked."""
        self.unacked_bytes = sum(_footprint(m) for m in list(self._in_flight) if not m.acked)
        if self._room is not None and self.unacked_bytes <= self.max_unacked_bytes:
            self._room.set()
        return self.unacked_bytes

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self.batches is not None:
            self.batches.drop(set(revoked))  # the next owner reads them from its position
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        await super().on_partitions_assigned(assigned, generation_id)
        self.recount_unacked_bytes()  # the buffers a rebalance cleared hold no room

    def ack(self, message: Any) -> bool:
        was_acked = message.acked
        result = super().ack(message)
        if not was_acked and message in self._in_flight:
            self._in_flight.discard(message)
            self.unacked_bytes = max(0, self.unacked_bytes - _footprint(message))
            if self._room is not None and self.unacked_bytes <= self.max_unacked_bytes:
                self._room.set()
        return result

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        # Faust calls this on its consumer only from `_drain_messages`, as
        # wait_first(callback(message), self.suspend_flow.wait()).
        first = coros[0] if coros else None
        if (
            timeout is None
            and asyncio.iscoroutine(first)
            and not self._stopped.is_set()
            and not self._crashed.is_set()
        ):
            try:
                finished, outcome = run_eagerly(first)
            except BaseException:
                _close(coros[1:])
                raise
            if finished:
                _close(coros[1:])
                return WaitResults([first], [outcome], False)
            coros = (outcome, *coros[1:])
        return await super().wait_first(*coros, timeout=timeout)


def _close(coros: tuple) -> None:
    for other in coros:
        if asyncio.iscoroutine(other):
            other.close()


class Batches:
    """The direct path: records the consumer fetched, taken by the agent in batches.

    Faust hands each record to its streams through the conductor, a channel's queue, an
    Event, the stream's processors and a per-record ack: about 28 us of CPU a record
    before any work. A `LedgerApp(direct=True)` consumer puts the record here instead,
    and the agent takes lists of them (`take`), writes them, and acks each with
    `Consumer.ack`, which is all Faust's offset commits need. The byte bound still holds
    (a record counts until it is acked); a revoked partition's records still queued are
    dropped (`drop`), its new owner reads them from the committed offset, and the
    ledger's own positions make any record written twice count once.
    """

    def __init__(self) -> None:
        self.records: deque = deque()
        self.arrived = asyncio.Event()

    def put(self, message: Any) -> None:
        self.records.append(message)
        self.arrived.set()

    async def take(self, max_records: int, within: float, linger: float) -> list:
        """Up to `max_records` records in fetch order. Records already waiting are taken at
        once: they came while the last take was being written, so the worker is behind and
        lingering would only idle it. Otherwise waits at most `within` for the first (then
        returns [] so the caller can look up), then `linger` for more."""
        if not self.records:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), within)
            except TimeoutError:
                return []
            if len(self.records) < max_records:
                await asyncio.sleep(linger)
        records = self.records
        return [records.popleft() for _ in range(min(max_records, len(records)))]

    def drop(self, partitions: set) -> int:
        """Forget the queued records of these partitions; how many were dropped."""
        kept = deque(m for m in self.records if m.tp not in partitions)
        dropped = len(self.records) - len(kept)
        self.records = kept
        return dropped


class Transport(faust_aiokafka.Transport):
    Consumer = LedgerConsumer


class LedgerApp(faust.App):
    """A Faust app whose consumer is `LedgerConsumer` (and its `LedgerConsumerThread`)."""

    def __init__(
        self, *args: Any, max_unacked_bytes: int = DEFAULT_MAX_UNACKED_BYTES, direct: bool = False,
        fetch_max_wait_ms: int | None = None, **kwargs: Any,
    ) -> None:
        self.max_unacked_bytes = max_unacked_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms  # None: Faust's 1500 ms
        self.direct = direct  # records to `Batches`, not to Faust's streams
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)


class RawSchema(faust.Schema):
    """Keys and values as the bytes Kafka delivered (None stays None)."""

    def loads_key(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value
