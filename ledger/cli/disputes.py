"""`gpuledger dispute ...` and `gpuledger disputes list`: disputes between members
(`ledger.service.disputes`). Each prints the dispute as it then is; a refused action
exits 2 and changes nothing."""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.acting import as_option, caller_of
from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.disputes import REASONS, parse_interval
from ledger.service import disputes as service

note_option = click.option("--note", default="", help="Free text, at most 2,000 characters.")


def _act(obj: Context, member: str | None, action) -> None:
    """Run `action(store, caller)` as the member (or the operator) and print what it returns."""

    async def acting() -> dict:
        async with wiring.store(obj.settings) as store:
            return await action(store, await caller_of(store, member))

    echo_json(run(acting()))


@click.group("dispute")
def dispute() -> None:
    """Open a dispute of usage billed on another provider's GPU, and move it."""


@dispute.command("open")
@as_option
@click.option("--gpu", "gpu_uuid", required=True, help="The GPU's uuid.")
@click.option("--from", "start", required=True, help="RFC 3339 instant with an offset, whole seconds (inclusive).")
@click.option("--to", "end", required=True, help="RFC 3339 instant (exclusive); at most 45 days after --from.")
@click.option("--provider", required=True, help="The GPU's provider.")
@click.option("--tenant", required=True, help="Your tenant the seconds were billed to.")
@click.option("--sku", required=True)
@click.option("--reason", required=True, type=click.Choice(REASONS))
@note_option
@pass_context
def open_(obj: Context, member, gpu_uuid, start, end, provider, tenant, sku, reason, note) -> None:
    """Open a dispute, as the reseller (--as) billed for the seconds of one GPU in
    [--from, --to) for --tenant. Refused unless some are billed now, the GPU is another
    member's, and their month ended at most the catalog's dispute_window_days ago."""
    interval = parse_interval(gpu_uuid, start, end, provider, member or "", tenant, sku)
    _act(obj, member, lambda store, caller: service.open_dispute(store, caller, interval, reason, note))


def _move_command(action: str, who: str, note_help: str | None = None):
    """A `dispute ACTION ID --as MEMBER [--note]` command."""

    @as_option
    @click.argument("dispute_id", metavar="ID")
    @click.option("--note", default="", required=False, help=note_help or "Free text, at most 2,000 characters.")
    @pass_context
    def command(obj: Context, member, dispute_id, note) -> None:
        _act(obj, member, lambda store, caller: service.move(store, caller, dispute_id, action, note))

    command.__doc__ = f"{action.capitalize()} a dispute, as its {who}."
    return dispute.command(action)(command)


_move_command("accept", "provider (--as): its seconds still billed are voided")
_move_command("reject", "provider (--as), saying why (--note)", "Why (required: a rejection carries a note).")
_move_command("escalate", "reseller (--as), once, within 14 days of its rejection: the alliance operator decides")
_move_command("withdraw", "reseller (--as), while it is open or escalated")


@dispute.command("decide")
@click.argument("dispute_id", metavar="ID")
@click.argument("decision", type=click.Choice(service.DECISIONS))
@note_option
@as_option
@pass_context
def decide(obj: Context, dispute_id, decision, note, member) -> None:
    """Decide an escalated dispute, as the alliance operator: accept (its seconds still
    billed are voided) or reject. Final."""
    _act(obj, member, lambda store, caller: service.move(store, caller, dispute_id, f"decide_{decision}", note))


@click.group("disputes")
def disputes() -> None:
    """Disputes opened so far."""


@disputes.command("list")
@as_option
@pass_context
def disputes_list(obj: Context, member: str | None) -> None:
    """Print {"disputes": [...]} in the order they were opened: all (the operator), or
    those the member is the provider or the reseller of (--as)."""
    _act(obj, member, service.listing)


@disputes.command("show")
@click.argument("dispute_id", metavar="ID")
@as_option
@pass_context
def disputes_show(obj: Context, dispute_id: str, member: str | None) -> None:
    """Print one dispute with its history."""
    _act(obj, member, lambda store, caller: service.show(store, caller, dispute_id))


def register(cli: click.Group) -> None:
    cli.add_command(dispute)
    cli.add_command(disputes)
