"""For auditors: the signing key, bundles of closed periods, and verification."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from auditor.verify import VerificationError, verify_bundle
from ledger.cli import wiring
from ledger.cli.output import Progress, echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.errors import InputError, VerificationFailed
from ledger.domain.periods import parse_period
from ledger.service import signing, verification
from ledger.service.export import export_bundle

KEY_HELP = "Private key file (default GPULEDGER_SIGNING_KEY or GPULEDGER_HOME/keys/signing.key)."


@click.group()
def keys() -> None:
    """The Ed25519 key that signs auditor bundles."""


@keys.command("init")
@click.option("--force", is_flag=True, help="Replace an existing key (old bundles stay verifiable only with the old public key).")
@pass_context
def keys_init(obj: Context, force: bool) -> None:
    """Create the signing key under GPULEDGER_HOME/keys; print where the public key is."""
    private_path, public_path, key_id = signing.init_keys(signing.key_dir(obj.settings.home), force)
    echo_json({"private_key": str(private_path), "public_key": str(public_path), "key_id": key_id})


@keys.command("public")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), help=KEY_HELP)
@pass_context
def keys_public(obj: Context, key_path: str | None) -> None:
    """Print the public key (PEM) to hand to auditors."""
    path = Path(key_path) if key_path else signing.default_private_key(obj.settings.home)
    sys.stdout.buffer.write(signing.public_pem(signing.load_private_key(path).public_key()))


@click.command()
@click.argument("period")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New or empty folder for the bundle.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), help=KEY_HELP)
@pass_context
def export(obj: Context, period: str, out_dir: str, key_path: str | None) -> None:
    """Write the signed auditor bundle of a closed PERIOD into --out."""
    parse_period(period)
    settings = obj.settings
    key = Path(key_path) if key_path else signing.default_private_key(settings.home)
    progress = Progress()

    async def write() -> dict:
        async with wiring.store(settings) as store:
            return await export_bundle(store, period, Path(out_dir), key, on_progress=lambda n: progress.show("evidence", n))

    manifest = run(write())
    echo_json({"bundle": str(Path(out_dir).absolute()), "period": period,
               "files": len(manifest["files"]), "chain_head": manifest["chain_head"]})


def _verify_database(obj: Context, public_key: str | None, anchors: tuple[str, ...]) -> dict:
    if anchors and not public_key:
        raise InputError("--anchor needs the ledger's public key: --public-key FILE")
    signed_heads = [signing.signed_chain_head(Path(a), public_key) for a in anchors]

    async def check() -> dict:
        async with wiring.store(obj.settings) as store:
            return await verification.verify(store, signed_heads)

    return run(check())


def _verify_bundle(bundle: str, public_key: str | None) -> None:
    if not public_key:
        raise InputError("verifying a bundle needs the ledger's public key: --public-key FILE")
    try:
        key_pem = Path(public_key).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {public_key}: {exc.strerror or exc}") from exc
    try:
        verify_bundle(Path(bundle), key_pem)
    except VerificationError as exc:
        raise VerificationFailed(str(exc)) from exc


@click.command()
@click.argument("bundle", required=False, type=click.Path(file_okay=False))
@click.option("--public-key", envvar="GPULEDGER_PUBLIC_KEY", type=click.Path(dir_okay=False), help="The ledger's public key (PEM) to check a bundle with (env GPULEDGER_PUBLIC_KEY).")
@click.option("--db", "check_db", is_flag=True, help="Check the database instead: the hourly rollups against the billed seconds, that every closed period has its stored statement, each one recomputed, the journal's hash chain and balances.")
@click.option("--anchor", "anchors", multiple=True, type=click.Path(file_okay=False), help="With --db: a bundle whose signed chain head the journal must still hold (repeatable; needs --public-key).")
@pass_context
def verify(obj: Context, bundle: str | None, public_key: str | None, check_db: bool, anchors: tuple[str, ...]) -> None:
    """Verify an auditor BUNDLE on its own, or the database's books with --db.

    Exit 0 when everything verifies; otherwise exit 4 and name the first discrepancy.
    """
    if check_db == (bundle is not None):
        raise InputError("give either a bundle folder or --db")
    if check_db:
        echo_json({"verified": True, **_verify_database(obj, public_key, anchors)})
        return
    _verify_bundle(bundle, public_key)
    echo_json({"verified": True, "bundle": str(Path(bundle).absolute())})


def register(cli: click.Group) -> None:
    for command in (keys, export, verify):
        cli.add_command(command)
