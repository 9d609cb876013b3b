"""`gpuledger catalog load`: members, SKUs, retail prices and agreements, all or nothing."""

from __future__ import annotations

import hashlib
import os

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json, read_input
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.catalog_file import parse_catalog
from ledger.service import catalog as catalog_service


@click.group()
def catalog() -> None:
    """Members, SKUs, retail prices and wholesale agreements."""


@catalog.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_context
def catalog_load(obj: Context, file: str) -> None:
    """Add the versions of a catalog TOML file (all or nothing)."""
    data = read_input(file)
    source = "stdin" if file == "-" else os.path.basename(file)
    content = parse_catalog(data, source)  # a bad file is refused before any connection

    async def load() -> dict:
        async with wiring.store(obj.settings) as store:
            return await catalog_service.load_parsed(store, content, hashlib.sha256(data).hexdigest(), source)

    echo_json(run(load()))


def register(cli: click.Group) -> None:
    cli.add_command(catalog)
