"""`gpuledger void` and `gpuledger voids`: GPU-seconds taken back, and the list of voids."""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.acting import as_option, caller_of
from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.disputes import REASONS, parse_interval
from ledger.service import corrections


@click.command("void")
@click.option("--gpu", "gpu_uuid", required=True, help="The GPU's uuid.")
@click.option("--from", "start", required=True, help="RFC 3339 instant with an offset, whole seconds (inclusive).")
@click.option("--to", "end", required=True, help="RFC 3339 instant (exclusive); at most 45 days after --from.")
@click.option("--provider", required=True)
@click.option("--reseller", required=True)
@click.option("--tenant", required=True)
@click.option("--sku", required=True)
@click.option("--reason", required=True, type=click.Choice(REASONS))
@as_option
@pass_context
def void(obj: Context, gpu_uuid, start, end, provider, reseller, tenant, sku, reason, member) -> None:
    """Take back the seconds of one GPU in [--from, --to) billed with exactly this
    attribution: they leave an open period's lines, or are returned by the first open
    period's statement. Prints {"void": ID, "gpu_seconds": N}; exit 2 when none is billed.
    As the operator, or --as the provider of the seconds."""
    interval = parse_interval(gpu_uuid, start, end, provider, reseller, tenant, sku)

    async def act() -> dict:
        async with wiring.store(obj.settings) as store:
            return await corrections.void(store, await caller_of(store, member), interval, reason)

    echo_json(run(act()))


@click.group("voids")
def voids() -> None:
    """Voids made so far."""


@voids.command("list")
@as_option
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@pass_context
def voids_list(obj: Context, member: str | None, limit: int) -> None:
    """Print {"voids": [...]}, oldest first: all (the operator), or those of seconds the
    member provided or resold (--as)."""

    async def listing() -> dict:
        async with wiring.store(obj.settings) as store:
            return await corrections.listing(store, await caller_of(store, member), limit)

    echo_json(run(listing()))


def register(cli: click.Group) -> None:
    cli.add_command(void)
    cli.add_command(voids)
