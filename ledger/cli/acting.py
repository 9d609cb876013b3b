"""`--as MEMBER`: a command acts as that member, with exactly the rights its API token has.

Without it a command acts as the alliance operator (the CLI is the operator's tool).
"""

from __future__ import annotations

import click

from ledger.domain.access import OPERATOR, Caller
from ledger.domain.errors import InputError
from ledger.domain.ports import Store

as_option = click.option(
    "--as", "member", metavar="MEMBER",
    help="Act as this member, with the rights its API token has (default: the alliance operator).",
)


async def caller_of(store: Store, member: str | None) -> Caller:
    """The caller a command acts as: the operator, or a member of the catalog."""
    if member is None:
        return OPERATOR
    if not await store.member_exists(member):
        raise InputError(f"{member!r} is not a member of the catalog")
    return Caller(token_id=f"cli:{member}", role="member", member=member)
