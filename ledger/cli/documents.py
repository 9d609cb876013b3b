"""`gpuledger documents PERIOD --out DIR [--member M]`: a period's documents as files."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.cli import wiring
from ledger.cli.output import Progress, echo_json, notice
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.access import OPERATOR, Caller
from ledger.domain.periods import parse_period
from ledger.service import documents


@click.command("documents")
@click.argument("period")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write the documents and manifest.json into (created if missing).")
@click.option("--member", help="Only what this member's token would see: the invoices it issued or received, its own report, the capacity report.")
@click.option("--processes", type=click.IntRange(min=1), default=None, help="Processes that make documents at once.  [default: one per CPU]")
@pass_context
def documents_command(obj: Context, period: str, out: Path, member: str | None, processes: int | None) -> None:
    """Write PERIOD's qualified invoices (tenant and member), a settlement report per member
    and the capacity report, each as HTML and PDF, and DIR/manifest.json; print the manifest.
    Documents are made in a process per CPU; a progress bar shows on a terminal."""
    parse_period(period)
    caller = OPERATOR if member is None else Caller(token_id="cli", role="member", member=member)

    async def gather() -> documents.PeriodDocuments:
        async with wiring.store(obj.settings) as store:
            return await documents.gather(store, period, caller)

    found = run(gather())
    # Imported here for startup time: WeasyPrint and matplotlib take most of a second,
    # which no other command should pay.
    from ledger.documents import output

    progress = Progress()
    manifest = output.write(
        found, out, processes=processes,
        on_progress=lambda done, total: progress.show("documents", done, total=total, final=done == total),
    )
    state = "closed" if found.statement.closed else "open: drafts"
    notice(f"wrote {len(manifest['documents'])} documents of {period} ({state}) to {out}")
    echo_json(manifest)


def register(cli: click.Group) -> None:
    cli.add_command(documents_command)
