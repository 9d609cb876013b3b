"""streams.publish: how `gpuledger ingest` groups a file's events into Kafka records.

With a stand-in producer (no broker): one GPU's consecutive events travel together, at
most BATCH_MAX_EVENTS a record; once MAX_BUFFERED_EVENTS are held across GPUs every
unfinished batch goes out, so a file of many GPUs' interleaved seconds is sent as it is
read; every event is sent exactly once, in its GPU's order.
"""

from __future__ import annotations

import asyncio

import orjson

from schemas.wire import split_batch
from streams import publish


class StandInProducer:
    def __init__(self, lines_read: list[int]) -> None:
        self.sent: list[tuple[bytes | None, bytes, int]] = []
        self.lines_read = lines_read

    async def send(self, topic, value, key=None, headers=None):
        self.sent.append((key, value, self.lines_read[0]))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def event(gpu: int, second: int) -> bytes:
    return orjson.dumps({"id": f"{gpu}-{second}", "data": {"gpu_uuid": f"GPU-{gpu}"}})


async def test_interleaved_gpus_are_sent_as_the_file_is_read_each_event_once_in_order(monkeypatch):
    monkeypatch.setattr(publish, "MAX_BUFFERED_EVENTS", 30)
    lines_read = [0]
    producer = StandInProducer(lines_read)
    lines = [event(gpu, second) for second in range(40) for gpu in range(10)]  # 400 events

    def reading():
        for line in lines:
            lines_read[0] += 1
            yield line

    records = await publish.KafkaPublisher(producer, "usage").publish(reading(), "ingest-1")
    assert records == len(producer.sent)
    first_sent_after = producer.sent[0][2]
    assert first_sent_after <= 30  # not after 200 events of every GPU (2,000 lines)
    by_gpu: dict[bytes, list[bytes]] = {}
    for key, value, _ in producer.sent:
        pieces = split_batch(value)
        elements = [piece for piece, _ in pieces] if pieces is not None else [value]
        assert len(elements) <= publish.BATCH_MAX_EVENTS
        by_gpu.setdefault(key, []).extend(elements)
    for gpu in range(10):
        assert by_gpu[f"GPU-{gpu}".encode()] == [event(gpu, second) for second in range(40)]


class SlowAcks:
    """A producer whose sends are acknowledged one at a time, oldest first, one per turn of the loop."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future] = []
        self.unacked_at_send: list[int] = []

    def unacked(self) -> int:
        return sum(not f.done() for f in self.futures)

    async def send(self, topic, value, key=None, headers=None):
        self.unacked_at_send.append(self.unacked())
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]

    async def acknowledge(self) -> None:
        while True:
            await asyncio.sleep(0)
            waiting = next((f for f in self.futures if not f.done()), None)
            if waiting is not None:
                waiting.set_result(None)


async def test_reading_goes_on_while_sends_are_in_flight_and_every_send_is_acknowledged(monkeypatch):
    monkeypatch.setattr(publish, "MAX_BUFFERED_EVENTS", 1)  # a record per line
    monkeypatch.setattr(publish, "MAX_PENDING_SENDS", 10)
    producer = SlowAcks()
    acks = asyncio.ensure_future(producer.acknowledge())
    try:
        lines = [event(gpu, 0) for gpu in range(100)]
        records = await publish.KafkaPublisher(producer, "usage").publish(iter(lines), "ingest-1")
    finally:
        acks.cancel()
    assert records == 100 and producer.unacked() == 0  # all acknowledged before it returns
    assert max(producer.unacked_at_send) <= 10  # in flight: bounded
    # Past the bound it waits for the oldest only: sends go on with others still in flight.
    after_a_wait = producer.unacked_at_send[11::5]
    assert after_a_wait and min(after_a_wait) >= 2
