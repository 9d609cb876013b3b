"""`gpuledger topic ensure`: create the usage topic and every member's topic as the ledger needs them."""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json, notice
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.errors import LedgerError
from ledger.settings import DEFAULT_PARTITIONS, Settings
from streams.auth import client_options
from streams.topics import USAGE_TOPIC_CONFIG, ensure_topics, usage_topics_of


async def member_ids(settings: Settings) -> list[str]:
    async with wiring.store(settings) as store:
        catalog, _ = await store.catalog()
    return sorted(catalog.members)


async def ensure_member_topics(settings: Settings, members: list[str], partitions: int,
                               replication_factor: int = 1) -> list[str]:
    """The usage topic and these members' topics, created where missing; those created."""
    return await ensure_topics(settings.need_kafka(), usage_topics_of(settings.usage_topic, members), partitions,
                               replication_factor, client_options(settings.kafka_auth))


def ensure_after_load(settings: Settings, members: list[str]) -> None:
    """After a catalog load that added members: their topics, where this command can reach
    Kafka with the right to create them; else it says what to run (the load stands)."""
    if not members or not settings.kafka_bootstrap:
        return
    try:
        created = run(ensure_member_topics(settings, members, DEFAULT_PARTITIONS))
    except LedgerError as exc:
        notice(f"the new members' topics were not created ({exc}); run `gpuledger topic ensure` as the Kafka admin")
        return
    if created:
        notice(f"created usage topics: {', '.join(created)}")


@click.group()
def topic() -> None:
    """The usage topics: the operator's and each member's own."""


@topic.command("ensure")
@click.option("--partitions", default=DEFAULT_PARTITIONS, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--replication-factor", default=3, show_default=True, type=click.IntRange(1, 10), help="3 in production (with min.insync.replicas 2).")
@pass_context
def topic_ensure(obj: Context, partitions: int, replication_factor: int) -> None:
    """Create the usage topic and the topic of every member of the catalog
    (`<usage topic>.<member>`) if they do not exist: LogAppendTime, records up to an API
    request. Existing topics are left as they are. Reads the members from the database."""
    settings = obj.settings
    members = run(member_ids(settings))
    created = run(ensure_member_topics(settings, members, partitions, replication_factor))
    echo_json({"topics": usage_topics_of(settings.usage_topic, members), "created": created,
               "partitions": partitions, "replication_factor": replication_factor, "config": USAGE_TOPIC_CONFIG})


def register(cli: click.Group) -> None:
    cli.add_command(topic)
