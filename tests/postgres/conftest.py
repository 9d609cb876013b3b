"""A real PostgreSQL for the store's tests: the embedded server, migrated once, and a
fresh database per test cloned from that template (a clone takes milliseconds)."""

from __future__ import annotations

import itertools
import os
import shutil
import sys

import asyncpg
import pytest

from bench.harness import world_enterable_folder as world_enterable_tmp
from ledger.dev import Stack
from ledger.dev.processes import run_coroutine
from ledger.postgres.connection import connection
from ledger.postgres.schema import migrate
from ledger.settings import APP_ROLE, with_user

TEMPLATE = "contract_template"
_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server():
    """The owner's URL of an embedded PostgreSQL with a migrated template database."""
    folder = world_enterable_tmp("gpuledger-pg-")
    stack = Stack(folder / "home")
    try:
        stack.start_postgres(durable=False)
        owner_url = stack.settings()["database_url"]

        async def prepare() -> None:
            async with connection(owner_url) as conn:
                await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
            async with connection(_database(owner_url, TEMPLATE)) as conn:
                await migrate(conn)

        run_coroutine(prepare())  # a thread of its own if an event loop runs here
        yield owner_url
    finally:
        stack.down()
        if os.environ.get("GPULEDGER_KEEP_TEST_HOMES"):
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def fresh_database(postgres_server) -> str:
    """The application role's URL of a new, migrated, empty ledger database."""
    return new_database(postgres_server)


def new_database(postgres_server: str) -> str:
    """A new database cloned from the migrated template; the application role's URL."""
    name = f"contract_{os.getpid()}_{next(_names)}"

    async def create() -> None:
        conn = await asyncpg.connect(postgres_server)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        finally:
            await conn.close()

    run_coroutine(create())
    return with_user(_database(postgres_server, name), APP_ROLE)
