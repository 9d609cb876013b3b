"""`gpuledger db migrate`: the schema, applied as the tables' owner."""

from __future__ import annotations

import click

from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.postgres.connection import connection
from ledger.postgres.schema import migrate


@click.group()
def db() -> None:
    """Database administration."""


@db.command("migrate")
@pass_context
def db_migrate(obj: Context) -> None:
    """Apply the schema migrations not yet applied (as the tables' owner:
    GPULEDGER_ADMIN_DATABASE_URL, else the database URL)."""

    async def apply() -> list[str]:
        async with connection(obj.settings.need_admin_database()) as conn:
            return await migrate(conn)

    echo_json({"applied": run(apply())})


def register(cli: click.Group) -> None:
    cli.add_command(db)
