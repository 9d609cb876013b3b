"""`gpuledger catalog load`: members, SKUs, retail prices and agreements, all or nothing."""

from __future__ import annotations

import hashlib
import os

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json, read_input
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.registry_file import parse_registry_csv
from ledger.service import catalog as catalog_service


@click.group()
def catalog() -> None:
    """Members, SKUs, retail prices and wholesale agreements."""


@catalog.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_context
def catalog_load(obj: Context, file: str) -> None:
    """Add the versions of a catalog TOML file (all or nothing).

    Then, where Kafka is configured, creates the usage topic of each member the file names
    (`<usage topic>.<member>`), so its producers can write at once."""
    data = read_input(file)
    source = "stdin" if file == "-" else os.path.basename(file)
    content = parse_catalog(data, source)  # a bad file is refused before any connection

    async def load() -> dict:
        async with wiring.store(obj.settings) as store:
            return await catalog_service.load_parsed(store, content, hashlib.sha256(data).hexdigest(), source)

    summary = run(load())
    # Imported here: Kafka's client takes a fifth of a second to import.
    from ledger.cli.topic import ensure_after_load

    ensure_after_load(obj.settings, sorted({member.id for member in content.members}))
    echo_json(summary)


@click.group()
def gpus() -> None:
    """The GPU registry: which provider's GPU each uuid is, its SKU, region and service."""


@gpus.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_context
def gpus_load(obj: Context, file: str) -> None:
    """Register GPUs from a CSV FILE (uuid,provider,sku,region,registered_from,retired_from),
    under the catalog's rules, all or nothing."""
    data = read_input(file)
    source = "stdin" if file == "-" else os.path.basename(file)
    content = parse_registry_csv(data, source)  # refused before any connection

    async def load() -> dict:
        async with wiring.store(obj.settings) as store:
            return await catalog_service.load_parsed(store, content, hashlib.sha256(data).hexdigest(), source)

    echo_json(run(load()))


@gpus.command("list")
@click.option("--provider", help="Only this provider's GPUs.")
@pass_context
def gpus_list(obj: Context, provider: str | None) -> None:
    """Print the registry as JSON: {"gpus": [...]}, by uuid."""

    async def listing() -> dict:
        async with wiring.store(obj.settings) as store:
            return {"gpus": catalog_service.registrations(await store.catalog(), provider)}

    echo_json(run(listing()))


def register(cli: click.Group) -> None:
    cli.add_command(catalog)
    cli.add_command(gpus)
