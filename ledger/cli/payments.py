"""`gpuledger payments record|confirm|reject|list|show`: paying the netting's transfers.

`--as MEMBER` acts as that member with exactly the rights its API token has (SPEC.md,
"The command line that checks use"); without it the command is the alliance operator's,
which may list every transfer but records and decides nothing.
"""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.access import OPERATOR, Caller
from ledger.domain.errors import NotFound
from ledger.service import payments as payments_service

AS_HELP = "Act as this member, with exactly the rights of its API token."


async def _caller(store, member: str | None) -> Caller:
    """The operator, or a member as its token would make it (an unknown member is refused)."""
    if member is None:
        return OPERATOR
    if not await store.member_exists(member):
        raise NotFound(f"--as {member}: no such member in the catalog")
    return Caller(token_id="cli", role="member", member=member)


def _print(obj: Context, member: str | None, action) -> None:
    async def act():
        async with wiring.store(obj.settings) as store:
            return await action(store, await _caller(store, member))

    echo_json(run(act()))


@click.group()
def payments() -> None:
    """Payments of closed periods' transfers: the payer records, the payee confirms or rejects.

    Each prints the payment as JSON: {"id", "period", "from", "to", "amount_yen",
    "paid_on", "reference", "state", "recorded_at", "decided_at", "note"}. A refused one
    exits 2 and changes nothing.
    """


@payments.command("record")
@click.option("--as", "member", required=True, help="The payer (the transfer's `from`).")
@click.option("--period", required=True, help="The closed period whose transfer this pays (YYYY-MM).")
@click.option("--to", "payee", required=True, help="The payee (the transfer's `to`).")
@click.option("--amount", "amount_yen", required=True, type=int, help="Yen paid (an integer > 0).")
@click.option("--paid-on", required=True, help="The day it was paid (YYYY-MM-DD; not after today).")
@click.option("--reference", required=True, help="The bank's reference, say (at most 200 characters).")
@pass_context
def payments_record(obj: Context, member, period, payee, amount_yen, paid_on, reference) -> None:
    """Record a payment of a transfer, as its payer."""
    _print(obj, member, lambda store, who: payments_service.record(
        store, who, period, payee, amount_yen, paid_on, reference))


@payments.command("confirm")
@click.argument("payment_id", metavar="ID")
@click.option("--as", "member", required=True, help="The payee.")
@pass_context
def payments_confirm(obj: Context, payment_id: str, member: str) -> None:
    """Confirm a recorded payment, as its payee (it is then paid, and in the journal)."""
    _print(obj, member, lambda store, who: payments_service.confirm(store, who, payment_id))


@payments.command("reject")
@click.argument("payment_id", metavar="ID")
@click.option("--as", "member", required=True, help="The payee.")
@click.option("--note", required=True, help="Why (at most 2,000 characters).")
@pass_context
def payments_reject(obj: Context, payment_id: str, member: str, note: str) -> None:
    """Reject a recorded payment, as its payee, saying why."""
    _print(obj, member, lambda store, who: payments_service.reject(store, who, payment_id, note))


@payments.command("show")
@click.argument("payment_id", metavar="ID")
@click.option("--as", "member", help=AS_HELP)
@pass_context
def payments_show(obj: Context, payment_id: str, member: str | None) -> None:
    """Print one payment."""
    _print(obj, member, lambda store, who: payments_service.show(store, who, payment_id))


@payments.command("list")
@click.option("--as", "member", help=AS_HELP + " It sees the transfers it pays or receives.")
@click.option("--as-of", help="The day to state them on (YYYY-MM-DD; default: today in the catalog's timezone).")
@click.option("--with-payments", is_flag=True, help="List each transfer's payments too (ids, states).")
@pass_context
def payments_list(obj: Context, member: str | None, as_of: str | None, with_payments: bool) -> None:
    """Print every transfer of the closed periods with what is paid, pending and overdue:
    {"as_of", "transfers": [{"period", "from", "to", "amount_yen", "due", "paid_yen",
    "pending_yen", "status", "days_overdue"}]}."""
    _print(obj, member, lambda store, who: payments_service.listing(store, who, as_of, with_payments))


def register(cli: click.Group) -> None:
    cli.add_command(payments)
