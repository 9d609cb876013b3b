"""The sender: events leave the spool only once the broker acknowledged them; a broker
away (errors, or a send that hangs) leaves them for the next try, the same bytes."""

from __future__ import annotations

import asyncio

from ledger.collect.metrics import Metrics
from ledger.collect.sending import Sender, ingest_id_of
from ledger.collect.spool import Spool, SpooledEvent
from ledger.domain.errors import ServiceUnavailable


class Broker:
    """A Publisher whose sends fail `failures` times (or hang), then succeed."""

    def __init__(self, failures: int = 0, hang: bool = False) -> None:
        self.failures, self.hang = failures, hang
        self.records: list[tuple[list[bytes], str, str | None]] = []
        self.closed = 0

    async def send_events(self, raws, ingest_id, sender=None) -> int:
        if self.hang:
            await asyncio.sleep(3600)
        if self.failures:
            self.failures -= 1
            raise ServiceUnavailable("cannot reach Kafka")
        self.records.append((list(raws), ingest_id, sender))
        return 1

    async def publish(self, *args, **kwargs) -> int:
        raise AssertionError("not used")

    async def close(self) -> None:
        self.closed += 1


def filled_spool(tmp_path, count: int) -> Spool:
    spool = Spool(tmp_path / "spool.db")
    spool.commit_tick(0, [], [], [SpooledEvent(f"id-{n}", n * 60, 60, f'{{"n":{n}}}'.encode()) for n in range(count)])
    return spool


async def test_events_go_as_records_of_the_member_and_leave_the_spool_once_acknowledged(tmp_path):
    spool, broker, metrics = filled_spool(tmp_path, 5), Broker(), Metrics()
    sender = Sender(spool, lambda: broker, "sakura", "node 1", metrics, record_events=2)
    assert [await sender.send_some() for _ in range(4)] == [2, 2, 1, 0]
    assert [len(raws) for raws, _, _ in broker.records] == [2, 2, 1]
    assert {(ingest, member) for _, ingest, member in broker.records} == {("collect.node-1", "sakura")}
    assert spool.depth() == 0
    assert metrics.registry.get_sample_value("gpuledger_collect_events_sent_total") == 5


async def test_a_failed_send_keeps_the_events_and_the_next_one_sends_the_same_bytes(tmp_path):
    spool, broker, metrics = filled_spool(tmp_path, 3), Broker(failures=2), Metrics()
    opened = []

    def open_publisher():
        opened.append(1)
        return broker

    sender = Sender(spool, open_publisher, "sakura", "n", metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.drain(stop))
    for _ in range(100):
        await asyncio.sleep(0.1)
        if spool.depth() == 0:
            break
    stop.set()
    await task
    assert spool.depth() == 0
    assert broker.records == [([b'{"n":0}', b'{"n":1}', b'{"n":2}'], "collect.n", "sakura")]
    assert metrics.registry.get_sample_value("gpuledger_collect_send_errors_total") == 2
    assert len(opened) == 3 and broker.closed == 2  # a failed producer is dropped, a new one made


async def test_a_send_that_hangs_times_out_and_keeps_the_events(tmp_path):
    spool, broker = filled_spool(tmp_path, 2), Broker(hang=True)
    sender = Sender(spool, lambda: broker, "sakura", "n", Metrics(), timeout_seconds=0.2)
    assert await sender.flush(5) is False
    assert spool.depth() == 2


def test_the_ingest_id_is_the_nodes_within_the_ledgers_alphabet():
    assert ingest_id_of("gpu-node/042 rack=7") == "collect.gpu-node-042-rack-7"
    assert len(ingest_id_of("x" * 100)) == 64


async def test_a_stop_abandons_a_hanging_send_and_keeps_its_events(tmp_path):
    spool, broker = filled_spool(tmp_path, 2), Broker(hang=True)
    sender = Sender(spool, lambda: broker, "sakura", "n", Metrics())
    stop = asyncio.Event()
    task = asyncio.create_task(sender.drain(stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 2)  # not the 30 s a send is given
    assert spool.depth() == 2 and sender.publisher is None
