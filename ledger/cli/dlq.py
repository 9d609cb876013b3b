"""`gpuledger dlq list|replay`: dead letters, and their replay through the workers."""

from __future__ import annotations

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.access import OPERATOR
from ledger.domain.errors import InputError
from ledger.domain.instants import parse_instant
from ledger.service import deadletters


@click.group()
def dlq() -> None:
    """Dead letters: list rejected events; replay them (after a catalog fix, say).

    A replayed event is processed from its dead letter, under the same rules, at its
    original receipt time; each dead letter is replayed at most once. A dead letter keeps
    its event whole within 1 MiB, else its first 4 KiB (raw_whole false), with its size
    and SHA-256.
    """


def _instant_ms(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    instant = parse_instant(text)
    if instant is None:
        raise InputError(f"{name} is not an RFC 3339 instant: {text!r}")
    return instant * 1000


@dlq.command("list")
@click.option("--reason", help="Only this reason (malformed, schema, ..., no_price, conflict).")
@click.option("--since", help="Received at or after this RFC 3339 instant.")
@click.option("--until", help="Received before this RFC 3339 instant.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, deadletters.MAX_LIST))
@click.option("--after", "after_id", type=click.IntRange(min=0), help="Start after this dead letter id (the next_cursor printed).")
@pass_context
def dlq_list(obj: Context, reason: str | None, since: str | None, until: str | None, limit: int, after_id: int | None) -> None:
    """Print dead letters as JSON: {"items": [...], "next_cursor": ...}, oldest first."""
    filters = {"reason": reason, "since_ms": _instant_ms(since, "--since"),
               "until_ms": _instant_ms(until, "--until"), "after_id": after_id}

    async def page() -> dict:
        async with wiring.store(obj.settings) as store:
            return await deadletters.page(store, None, limit=limit, **filters)

    echo_json(run(page()))


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--reason", help="Replay the dead letters of this reason...")
@click.option("--since", help="...received at or after this RFC 3339 instant...")
@click.option("--until", help="...and before this one (at most 10,000 per replay).")
@click.option("--wait", is_flag=True, hidden=True, help="Kept for scripts: a replay is decided before the command returns.")
@pass_context
def dlq_replay(obj: Context, ids: tuple[int, ...], reason: str | None, since: str | None, until: str | None, wait: bool) -> None:
    """Replay dead letters by IDS, or by --reason/--since/--until, at once.

    Each is judged from its stored bytes at its original receipt time, against today's
    catalog. A dead letter that keeps only a prefix of its event (over 1 MiB, or a
    compressed batch that was not decompressed) cannot be: named by id it refuses the
    command (exit 2); matched by a filter it is counted in skipped_not_replayable. Prints
    {"ingest_id", "replayed", "skipped_already_replayed", "skipped_not_replayable"} and the
    replay's counts, as `ingest --wait` prints them.
    """
    settings = obj.settings
    filters = {"reason": reason, "since_ms": _instant_ms(since, "--since"),
               "until_ms": _instant_ms(until, "--until")}
    if ids:
        filters["ids"] = list(ids)

    async def replay() -> dict:
        async with wiring.store(settings) as store:
            return await deadletters.replay(store, OPERATOR, **filters)

    echo_json(run(replay()))


def register(cli: click.Group) -> None:
    cli.add_command(dlq)
