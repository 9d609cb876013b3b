"""`gpuledger topic ensure`: create the usage topic as the ledger needs it."""

from __future__ import annotations

import click

from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.settings import DEFAULT_PARTITIONS
from streams.auth import client_options
from streams.topics import USAGE_TOPIC_CONFIG, ensure_topic


@click.group()
def topic() -> None:
    """The usage topic."""


@topic.command("ensure")
@click.option("--partitions", default=DEFAULT_PARTITIONS, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--replication-factor", default=3, show_default=True, type=click.IntRange(1, 10), help="3 in production (with min.insync.replicas 2).")
@pass_context
def topic_ensure(obj: Context, partitions: int, replication_factor: int) -> None:
    """Create the usage topic if it does not exist: LogAppendTime, records up to an API
    request. An existing topic is left as it is."""
    settings = obj.settings
    run(ensure_topic(settings.need_kafka(), settings.usage_topic, partitions, replication_factor,
                     client_options(settings.kafka_auth)))
    echo_json({"topic": settings.usage_topic, "partitions": partitions,
               "replication_factor": replication_factor, "config": USAGE_TOPIC_CONFIG})


def register(cli: click.Group) -> None:
    cli.add_command(topic)
