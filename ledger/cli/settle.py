"""`gpuledger settle PERIOD [--close]`: a period's settlement statement."""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.output import echo_bytes
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain import report
from ledger.domain.periods import parse_period
from ledger.service import books


@click.command()
@click.argument("period")
@click.option("--close", is_flag=True, help="Close the books through PERIOD first (it must have ended).")
@click.option("--format", "output_format", type=click.Choice(["json", "table", "csv"]), default="json", show_default=True, help="json: SPEC.md's document; table: for people; csv: one row per item.")
@pass_context
def settle(obj: Context, period: str, close: bool, output_format: str) -> None:
    """Print the settlement statement of PERIOD (YYYY-MM)."""
    parse_period(period)

    async def statement() -> bytes:
        async with wiring.store(obj.settings) as store:
            return await books.statement(store, period, close=close)

    document = run(statement())
    if output_format == "table":
        click.echo(report.as_table(books.read(document)), nl=False)
    elif output_format == "csv":
        click.echo(report.as_csv(books.read(document)), nl=False)
    else:
        echo_bytes(document)


def register(cli: click.Group) -> None:
    cli.add_command(settle)
