"""How commands get their adapters: the store, the publisher, the async runner."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import click

from ledger.postgres.store import PostgresStore
from ledger.settings import Settings, resolve
from streams.auth import client_options
from streams.publish import KafkaPublisher


class Context:
    """The group's options; settings are resolved on use, so that `dev up` sees the stack
    it has just started."""

    def __init__(self, home, database_url, kafka_bootstrap, usage_topic) -> None:
        self.options = (home, database_url, kafka_bootstrap, usage_topic)

    @property
    def settings(self) -> Settings:
        return resolve(*self.options)


pass_context = click.make_pass_decorator(Context)


def run(coroutine):
    """Run a command's coroutine (errors arrive translated by the adapters)."""
    return asyncio.run(coroutine)


@asynccontextmanager
async def store(settings: Settings):
    """The ledger's store for one command (the application's database role)."""
    opened = await PostgresStore.connect(settings.need_database())
    try:
        yield opened
    finally:
        await opened.close()


@asynccontextmanager
async def publisher(settings: Settings):
    """The usage topic's publisher for one command."""
    opened = await KafkaPublisher.start(settings.need_kafka(), settings.usage_topic, client_options(settings.kafka_auth))
    try:
        yield opened
    finally:
        await opened.close()
