"""The PostgreSQL store: migrations, the catalog, the books, and statements.

This module is the one choke point where asyncpg is used and its errors are translated
into `ledger.errors`. SQL lives here as constants, with parameters only. The batch
writes of the stream workers are in `ledger.intake`, which uses the same connection
helpers.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from contextlib import asynccontextmanager
from importlib import resources

import asyncpg
import orjson

from ledger.domain import journal, rating
from ledger.domain.catalog import (
    AgreementVersion,
    Catalog,
    CatalogFileContent,
    Member,
    PriceVersion,
    Sku,
    parse_catalog,
)
from ledger.domain.errors import LedgerError, PeriodError, ServiceUnavailable
from ledger.domain.instants import format_utc
from ledger.domain.periods import next_period, parse_period

CATALOG_LOCK_KEY = 0x6770756C65646701  # pg_advisory_xact_lock key serializing catalog loads


class VerificationFailed(LedgerError):
    """The ledger's journal or an auditor bundle does not verify."""

    exit_code = 4


def _describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


@asynccontextmanager
async def connection(database_url: str, timeout: float = 10.0):
    """One connection, with an unreachable server reported as ServiceUnavailable."""
    try:
        conn = await asyncpg.connect(database_url, timeout=timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise ServiceUnavailable(f"cannot reach PostgreSQL at {_redact(database_url)}: {_describe(exc)}") from exc
    try:
        yield conn
    finally:
        await conn.close()


def _redact(database_url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = database_url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}@{host}"
    return database_url


# -- migrations --------------------------------------------------------------------

MIGRATIONS_LOCK_KEY = 0x6770756C65646702


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet applied; return their names."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATIONS_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        files = sorted(
            f for f in resources.files("ledger.postgres.migrations").iterdir() if f.name.endswith(".sql")
        )
        for file in files:
            if file.name in done:
                continue
            await conn.execute(file.read_text())
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", file.name)
            applied_now.append(file.name)
    return applied_now


async def forget_positions(conn: asyncpg.Connection, topic: str) -> None:
    """Drop the stored Kafka positions of a topic that was recreated (empty, from offset 0)."""
    await conn.execute("DELETE FROM consumer_positions WHERE topic = $1", topic)


# -- catalog -----------------------------------------------------------------------

SELECT_CATALOG_REVISION = "SELECT coalesce(max(revision), 0) FROM catalog_loads"


async def load_catalog(conn: asyncpg.Connection) -> tuple[Catalog, int]:
    """The stored catalog and its revision (0 when nothing was ever loaded)."""
    revision = await conn.fetchval(SELECT_CATALOG_REVISION)
    settings = await conn.fetchrow("SELECT * FROM catalog_settings WHERE id = 1")
    if settings is None:
        return Catalog(), revision
    members = {
        r["id"]: Member(r["id"], r["name"], r["invoice_registration"])
        for r in await conn.fetch("SELECT id, name, invoice_registration FROM members")
    }
    skus = {
        r["id"]: Sku(r["id"], r["description"])
        for r in await conn.fetch("SELECT id, description FROM skus")
    }
    prices: dict = defaultdict(list)
    for r in await conn.fetch(
        "SELECT reseller, sku, effective_from, yen_per_gpu_hour_units FROM retail_prices"
    ):
        prices[(r["reseller"], r["sku"])].append(
            PriceVersion(r["effective_from"], r["yen_per_gpu_hour_units"])
        )
    agreements: dict = defaultdict(list)
    for r in await conn.fetch(
        "SELECT reseller, provider, sku, effective_from, wholesale_units, share_bps FROM agreements"
    ):
        agreements[(r["reseller"], r["provider"], r["sku"])].append(
            AgreementVersion(r["effective_from"], r["wholesale_units"], r["share_bps"])
        )
    catalog = Catalog(
        currency=settings["currency"],
        timezone=settings["timezone"],
        tax_rate_percent=settings["tax_rate_percent"],
        acceptance_horizon_days=settings["acceptance_horizon_days"],
        loaded=True,
        members=members,
        skus=skus,
        prices={k: tuple(sorted(v)) for k, v in prices.items()},
        agreements={k: tuple(sorted(v)) for k, v in agreements.items()},
    )
    return catalog, revision


async def _closed_through(conn: asyncpg.Connection, lock: str = "") -> str | None:
    return await conn.fetchval(f"SELECT closed_through FROM books WHERE id = 1 {lock}")


async def save_catalog(conn: asyncpg.Connection, data: bytes, source: str) -> dict:
    """Load a catalog file, all or nothing; return what it added."""
    content = parse_catalog(data, source)
    return await save_parsed_catalog(conn, content, hashlib.sha256(data).hexdigest(), source)


async def save_parsed_catalog(
    conn: asyncpg.Connection, content: CatalogFileContent, sha256: str, source: str
) -> dict:
    """Merge an already parsed catalog file into the stored one (see save_catalog)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CATALOG_LOCK_KEY)
        # FOR SHARE: a concurrent close waits, so "inside a closed period" stays true.
        closed_through = await _closed_through(conn, "FOR SHARE")
        current, _ = await load_catalog(conn)
        closed_before = None
        if closed_through is not None:
            closed_before = current.calendar.bounds(closed_through)[1]
        merged = current.merge(content, closed_before)
        added = {
            "members": sorted(set(merged.members) - set(current.members)),
            "skus": sorted(set(merged.skus) - set(current.skus)),
            "retail_prices": [
                (key, version)
                for key, versions in merged.prices.items()
                for version in versions
                if version not in current.prices.get(key, ())
            ],
            "agreements": [
                (key, version)
                for key, versions in merged.agreements.items()
                for version in versions
                if version not in current.agreements.get(key, ())
            ],
        }
        summary = {
            "members_added": len(added["members"]),
            "skus_added": len(added["skus"]),
            "retail_prices_added": len(added["retail_prices"]),
            "agreements_added": len(added["agreements"]),
        }
        if current.loaded and not any(summary.values()):
            summary["revision"] = await conn.fetchval(SELECT_CATALOG_REVISION)
            return summary
        revision = await conn.fetchval(
            "INSERT INTO catalog_loads (source, sha256) VALUES ($1, $2) RETURNING revision",
            source,
            sha256,
        )
        if not current.loaded:
            await conn.execute(
                "INSERT INTO catalog_settings VALUES (1, $1, $2, $3, $4)",
                merged.currency,
                merged.timezone,
                merged.tax_rate_percent,
                merged.acceptance_horizon_days,
            )
        await conn.executemany(
            "INSERT INTO members (id, name, invoice_registration, revision) VALUES ($1, $2, $3, $4)",
            [
                (m, merged.members[m].name, merged.members[m].invoice_registration, revision)
                for m in added["members"]
            ],
        )
        await conn.executemany(
            "INSERT INTO skus (id, description, revision) VALUES ($1, $2, $3)",
            [(s, merged.skus[s].description, revision) for s in added["skus"]],
        )
        await conn.executemany(
            "INSERT INTO retail_prices VALUES ($1, $2, $3, $4, $5)",
            [
                (reseller, sku, v.effective_from, v.yen_per_gpu_hour_units, revision)
                for (reseller, sku), v in added["retail_prices"]
            ],
        )
        await conn.executemany(
            "INSERT INTO agreements VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (reseller, provider, sku, v.effective_from, v.wholesale_units, v.share_bps, revision)
                for (reseller, provider, sku), v in added["agreements"]
            ],
        )
        summary["revision"] = revision
        return summary


# -- statements and the books ----------------------------------------------------------

SELECT_HOUR_TOTALS = """
SELECT reseller, tenant, provider, sku, service_period, hour_start, sum(seconds)::bigint AS seconds
FROM claims
WHERE booking_period = $1 AND NOT (hour_start = ANY($2::bigint[]))
GROUP BY reseller, tenant, provider, sku, service_period, hour_start
"""

SELECT_HOUR_BITS = """
SELECT reseller, tenant, provider, sku, service_period, hour_start, seconds, bits
FROM claims
WHERE booking_period = $1 AND hour_start = ANY($2::bigint[])
"""


async def _hour_usages(conn: asyncpg.Connection, period: str, catalog: Catalog):
    split = sorted(rating.split_hours(catalog))
    usages = [
        rating.HourUsage(
            r["reseller"], r["tenant"], r["provider"], r["sku"], r["service_period"],
            r["hour_start"], r["seconds"],
        )
        for r in await conn.fetch(SELECT_HOUR_TOTALS, period, split)
    ]
    usages.extend(
        rating.HourUsage(
            r["reseller"], r["tenant"], r["provider"], r["sku"], r["service_period"],
            r["hour_start"], r["seconds"], int.from_bytes(r["bits"], "little"),
        )
        for r in await conn.fetch(SELECT_HOUR_BITS, period, split)
    )
    return usages


def render(document: dict) -> bytes:
    """A statement's bytes: compact JSON, keys in SPEC.md's order."""
    return orjson.dumps(document)


async def _compute_statement(conn, period: str, catalog: Catalog, closed: bool) -> dict:
    lines = rating.rate(catalog, await _hour_usages(conn, period, catalog))
    return rating.statement(period, catalog, lines, closed)


async def statement(conn: asyncpg.Connection, period: str, close: bool = False) -> bytes:
    """The statement of `period`; with `close`, close the books through it first."""
    parse_period(period)
    async with conn.transaction():
        closed_through = await _closed_through(conn, "FOR UPDATE" if close else "")
        catalog, _ = await load_catalog(conn)
        if close and (closed_through is None or period > closed_through):
            closed_through = await _close_through(conn, period, closed_through, catalog)
        if closed_through is not None and period <= closed_through:
            return await _closed_document(conn, period, catalog)
        return render(await _compute_statement(conn, period, catalog, closed=False))


async def closed_statement(conn: asyncpg.Connection, period: str) -> bytes | None:
    """The bytes a closed period prints, or None if the period is open."""
    parse_period(period)
    closed_through = await _closed_through(conn)
    if closed_through is None or period > closed_through:
        return None
    catalog, _ = await load_catalog(conn)
    return await _closed_document(conn, period, catalog)


async def _closed_document(conn, period: str, catalog: Catalog) -> bytes:
    document = await conn.fetchval("SELECT document FROM closed_statements WHERE period = $1", period)
    if document is not None:
        return document
    return await _empty_closed_statement(conn, period, catalog)


async def _close_through(conn, period: str, closed_through: str | None, catalog: Catalog) -> str:
    """Close every open period up to `period` (the caller holds books FOR UPDATE)."""
    _, end = catalog.calendar.bounds(period)
    now_s = await conn.fetchval("SELECT extract(epoch FROM now())::bigint")
    if now_s < end:
        raise PeriodError(f"{period} cannot be closed before it ends at {format_utc(end)}")
    if closed_through is not None:
        first = next_period(closed_through)
    else:
        earliest = await conn.fetchval("SELECT min(booking_period) FROM claims")
        first = min(earliest, period) if earliest else period
    current = first
    while current <= period:
        document = await _compute_statement(conn, current, catalog, closed=True)
        await conn.execute(
            "INSERT INTO closed_statements (period, document) VALUES ($1, $2)",
            current,
            render(document),
        )
        await _post_journal(conn, current, document)
        current = next_period(current)
    await conn.execute(
        "INSERT INTO period_closes (closed_through, member_ids) VALUES ($1, $2)",
        period,
        sorted(catalog.members),
    )
    await conn.execute("UPDATE books SET closed_through = $1 WHERE id = 1", period)
    return period


INSERT_JOURNAL_ENTRY = """
INSERT INTO journal_entries (seq, period, kind, reference, prev_hash, hash)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
"""

SELECT_JOURNAL_HEAD = "SELECT seq, hash FROM journal_entries ORDER BY seq DESC LIMIT 1"


async def _post_journal(conn, period: str, document: dict) -> None:
    """Post a closing period's entries after the chain's head (the caller holds the books)."""
    head = await conn.fetchrow(SELECT_JOURNAL_HEAD)
    last_seq, last_hash = (head["seq"], bytes(head["hash"])) if head else (0, journal.GENESIS_HASH)
    entries = journal.chain(period, journal.entries_for_statement(document), last_seq, last_hash)
    if not entries:
        return
    await conn.executemany(
        INSERT_JOURNAL_ENTRY,
        [
            (e.seq, e.period, e.kind, json.dumps(e.reference, sort_keys=True), e.prev_hash, e.hash)
            for e in entries
        ],
    )
    await conn.copy_records_to_table(
        "postings",
        records=[
            (e.seq, idx, account, amount)
            for e in entries
            for idx, (account, amount) in enumerate(e.postings)
        ],
        columns=("entry_seq", "idx", "account", "amount_yen"),
    )


SELECT_JOURNAL = """
SELECT e.seq, e.period, e.kind, e.reference::text AS reference, e.prev_hash, e.hash,
       coalesce(array_agg(p.account ORDER BY p.idx) FILTER (WHERE p.idx IS NOT NULL), '{}') AS accounts,
       coalesce(array_agg(p.amount_yen ORDER BY p.idx) FILTER (WHERE p.idx IS NOT NULL), '{}') AS amounts
FROM journal_entries e LEFT JOIN postings p ON p.entry_seq = e.seq
WHERE ($1::text IS NULL OR e.period = $1)
GROUP BY e.seq
ORDER BY e.seq
"""


async def journal_entries(conn, period: str | None = None):
    """Stored journal entries in sequence order, streamed (call inside a transaction)."""
    async for row in conn.cursor(SELECT_JOURNAL, period, prefetch=1000):
        yield journal.ChainedEntry(
            row["seq"], row["period"], row["kind"], json.loads(row["reference"]),
            list(zip(row["accounts"], row["amounts"], strict=True)),
            bytes(row["prev_hash"]), bytes(row["hash"]),
        )


async def verify_database(conn, anchors: list[tuple[str, int, str]] = ()) -> dict:
    """Walk the journal's chain and postings; check every closed period's entries against
    its stored statement, and the chain against signed heads auditors hold (`anchors`:
    (where it comes from, seq, hash hex)); raise VerificationFailed naming the first break.

    The anchors are what catches a superuser who rewrote the whole chain consistently:
    the heads already handed out in signed bundles must still be in it."""
    by_period: dict[str, list] = defaultdict(list)
    balances: dict[str, int] = defaultdict(int)
    count = 0

    async def walk():
        nonlocal count
        async for entry in journal_entries(conn):
            count += 1
            by_period[entry.period].append(entry)
            for account, amount in entry.postings:
                balances[account] += amount
            yield entry

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        entries = [entry async for entry in walk()]
        try:
            head_seq, head_hash = journal.check_chain(entries)
        except ValueError as exc:
            raise VerificationFailed(str(exc)) from exc
        by_seq = {entry.seq: entry for entry in entries}
        for source, seq, digest in anchors:
            entry = by_seq.get(seq)
            if entry is None or entry.hash.hex() != digest:
                raise VerificationFailed(
                    f"journal entry {seq} is not the one signed in {source}: "
                    "the chain was rewritten after that bundle was exported"
                )
        statements = {
            r["period"]: orjson.loads(r["document"])
            for r in await conn.fetch("SELECT period, document FROM closed_statements")
        }
    for period, document in sorted(statements.items()):
        expected = journal.entries_for_statement(document)
        stored = by_period.get(period, [])
        got = [journal.Entry(e.kind, e.reference, [tuple(p) for p in e.postings]) for e in stored]
        want = [journal.Entry(e.kind, e.reference, [tuple(p) for p in e.postings]) for e in expected]
        if got != want:
            first = next(
                (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want))
            )
            where = f"entry {stored[first].seq}" if first < len(stored) else "its last entries"
            raise VerificationFailed(
                f"the journal of {period} does not match its closed statement at {where}"
            )
    for period in by_period:
        if period not in statements:
            raise VerificationFailed(f"journal entries for {period}, which has no closed statement")
    trial_balance = sum(balances.values())
    if trial_balance != 0:
        raise VerificationFailed(f"the trial balance of all accounts is {trial_balance} yen, not 0")
    return {
        "entries": count,
        "anchors_checked": len(anchors),
        "head": {"seq": head_seq, "hash": head_hash.hex()},
        "closed_periods": sorted(statements),
        "accounts": len(balances),
        "trial_balance_yen": trial_balance,
    }


async def _empty_closed_statement(conn, period: str, catalog: Catalog) -> bytes:
    """A closed period that had no usage when it was closed: nothing, zeros, no transfers.

    Its zero nets list the members known at the close that covered it, so it prints the
    same bytes however many members join later.
    """
    member_ids = await conn.fetchval(
        "SELECT member_ids FROM period_closes WHERE closed_through >= $1"
        " ORDER BY closed_through LIMIT 1",
        period,
    )
    document = rating.statement(period, catalog, [], closed=True)
    document["net_yen"] = dict.fromkeys(sorted(member_ids or []), 0)
    return render(document)
