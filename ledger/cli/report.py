"""`gpuledger report capacity PERIOD`: the alliance capacity report."""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.service import reports


@click.group()
def report() -> None:
    """Reports for every member of the alliance."""


@report.command("capacity")
@click.argument("period")
@pass_context
def report_capacity(obj: Context, period: str) -> None:
    """Print what each provider registered and what was billed in PERIOD (YYYY-MM)."""

    async def build() -> dict:
        async with wiring.store(obj.settings) as store:
            return await reports.capacity(store, period)

    echo_json(run(build()))


def register(cli: click.Group) -> None:
    cli.add_command(report)
