"""`gpuledger db migrate`: the schema, applied as the tables' owner."""

from __future__ import annotations

import click

from ledger.cli.output import echo_json, read_input
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.errors import InputError
from ledger.postgres.connection import connection
from ledger.postgres.schema import migrate, set_app_password


@click.group()
def db() -> None:
    """Database administration."""


@db.command("migrate")
@click.option("--app-password-file", type=click.Path(dir_okay=False), help="Set the password of the application's role gpuledger_app from this file (a mounted secret).")
@pass_context
def db_migrate(obj: Context, app_password_file: str | None) -> None:
    """Apply the schema migrations not yet applied (as the tables' owner:
    GPULEDGER_ADMIN_DATABASE_URL, else the database URL)."""
    password = read_input(app_password_file).decode().strip() if app_password_file else None
    if password == "":
        raise InputError(f"{app_password_file} is empty")

    async def apply() -> list[str]:
        async with connection(obj.settings.need_admin_database()) as conn:
            applied = await migrate(conn)
            if password is not None:
                await set_app_password(conn, password)
            return applied

    echo_json({"applied": run(apply()), "app_password_set": password is not None})


def register(cli: click.Group) -> None:
    cli.add_command(db)
