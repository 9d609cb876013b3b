"""`gpuledger ingest FILE [--wait]`: a file's usage events onto the usage topic."""

from __future__ import annotations

import sys
import uuid

import click

from ledger.cli import wiring
from ledger.cli.output import Progress, echo_json, notice
from ledger.cli.wiring import Context, pass_context, run
from ledger.dev import Stack
from ledger.domain.errors import InputError
from ledger.domain.ndjson import read_chunks, split_lines
from ledger.service import ingest as ingest_service
from ledger.service.ingest import wait as wait_for
from ledger.settings import Settings


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--wait", is_flag=True, help="Wait until every event is processed and print the counts.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0, help="With --wait: give up after this many seconds (0: never).")
@click.option("--batch-events", type=click.IntRange(1, 1000), default=200, show_default=True, help="Events of one GPU per Kafka record.")
@pass_context
def ingest(obj: Context, file: str, wait: bool, timeout: float, batch_events: int) -> None:
    """Publish the usage events of an NDJSON FILE ('-' for stdin) to the usage topic."""
    try:
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
    settings = obj.settings
    settings.need_database(), settings.need_kafka()  # both, before anything is sent
    ingest_id = uuid.uuid4().hex
    progress = Progress()

    lost = broker_lost(settings)  # before anything is published

    async def publish_and_count() -> dict:
        # The broker first: a file is only read once something can take its events.
        async with wiring.publisher(settings) as publisher, wiring.store(settings) as store:
            with stream:
                published = await ingest_service.publish(
                    store, publisher, split_lines(read_chunks(stream)), ingest_id,
                    batch_max_events=batch_events,
                    on_progress=lambda n: progress.show("published", n),
                )
            progress.show("published", published.received, final=True)
            if not wait:
                return {"ingest_id": ingest_id, "received": published.received, "records": published.records}
            return await wait_for(
                store, ingest_id, published.received, timeout,
                lambda done, final: progress.show("processed", done, total=published.received, final=final),
                notice, lost,
            )

    echo_json(run(publish_and_count()))


def broker_lost(settings: Settings):
    """On the local stack: a check that the embedded broker is still the one the file was
    published to (it keeps records in memory only, so a new one has lost them)."""
    stack = Stack(settings.home)
    if stack.settings().get("kafka_bootstrap") != settings.kafka_bootstrap:
        return lambda: None  # a real deployment: Kafka keeps what it acknowledged

    def identity():
        record = stack.component("broker") or {}
        return record.get("pid"), record.get("start_ticks")

    published_to = identity()
    return lambda: "the embedded broker restarted after the file was published" if identity() != published_to else None


def register(cli: click.Group) -> None:
    cli.add_command(ingest)
