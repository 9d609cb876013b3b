"""`gpuledger grants list`: every grant, its draws per booking period and its balance."""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.access import OPERATOR
from ledger.domain.periods import parse_period
from ledger.service import grants as grants_service


@click.group()
def grants() -> None:
    """Credits a member funds for a reseller's tenant."""


@grants.command("list")
@click.option("--period", help="Draws through this booking period (YYYY-MM; default: the current one).")
@pass_context
def grants_list(obj: Context, period: str | None) -> None:
    """Print every grant with its draws per booking period, balance and lapsed yen."""
    if period is not None:
        parse_period(period)

    async def report() -> dict:
        async with wiring.store(obj.settings) as store:
            return await grants_service.report(store, OPERATOR, period)

    echo_json(run(report()))


def register(cli: click.Group) -> None:
    cli.add_command(grants)
