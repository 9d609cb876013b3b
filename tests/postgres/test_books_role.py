"""The books as the application's role meets them: they move only through a close that
stores the statement of every period it closes, and `verify --db` checks what the
database cannot (that a stored statement is the right one, that the rollups add up).

Every test runs on a fresh database as `gpuledger_app`, the role of the workers and the
API (tests/postgres/conftest.py); raw SQL is what a compromised or mistaken application
could send. Edits of what only the tables' owner may change are made as the owner.
"""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from ledger.domain.catalog_file import parse_catalog
from ledger.domain.errors import VerificationFailed
from ledger.domain.metering import ClaimKey
from ledger.postgres.store import PostgresStore
from ledger.service import books, verification
from ledger.service import catalog as catalog_service
from tests.factories import DEFAULT_CATALOG, instant

pytestmark = pytest.mark.infra

KDDI_ACME = ("sakura", "kddi", "acme", "H200")  # (provider, reseller, tenant, sku)
FULL_HOUR = (1 << 3600) - 1
OCT_10_JST = instant("2026-10-10T00:00:00+09:00")
NOV_10_JST = instant("2026-11-10T00:00:00+09:00")
NOVEMBER_SECONDS = 100_000  # 27 full hours and 2,800 seconds


@pytest.fixture
async def ledger(fresh_database, postgres_server):
    """A ledger with 2 hours billed in 2026-10 and 100,000 seconds in 2026-11, closed
    through 2026-10 by the application; (store, the app role's URL, the owner's URL)."""
    owner_url = postgres_server.rsplit("/", 1)[0] + "/" + fresh_database.rsplit("/", 1)[1]
    store = await PostgresStore.connect(fresh_database)
    try:
        await catalog_service.load_parsed(store, parse_catalog(DEFAULT_CATALOG.encode()), "0" * 64, "test")
        hours = [(OCT_10_JST + 3600 * i, "2026-10", FULL_HOUR) for i in range(2)]
        hours += [(NOV_10_JST + 3600 * i, "2026-11", FULL_HOUR) for i in range(27)]
        hours.append((NOV_10_JST + 3600 * 27, "2026-11", (1 << 2800) - 1))
        async with store.intake() as tx:
            await tx.write_claims([(ClaimKey("GPU-1", hour, KDDI_ACME, p, p), bits) for hour, p, bits in hours])
        await books.statement(store, "2026-10", close=True)
        yield store, fresh_database, owner_url
    finally:
        await store.close()


async def sql(url: str, *statements: str) -> list:
    """Run statements in one transaction; the last one's rows."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            rows = []
            for statement in statements:
                rows = await conn.fetch(statement)
            return rows
    finally:
        await conn.close()


async def statement_of(store, period: str) -> dict:
    return orjson.loads(await books.statement(store, period))


async def test_a_bare_update_of_the_books_is_refused_and_the_seconds_stay_on_a_statement(ledger):
    store, app_url, _ = ledger
    with pytest.raises(asyncpg.CheckViolationError, match="none is stored for 2026-11"):
        await sql(app_url, "UPDATE books SET closed_through = '2026-11'")
    november = await statement_of(store, "2026-11")
    assert november["closed"] is False
    assert sum(line["gpu_seconds"] for line in november["lines"]) == NOVEMBER_SECONDS
    # Not by a statement made up for the occasion without the close's record either.
    with pytest.raises(asyncpg.CheckViolationError, match="period_closes"):
        await sql(
            app_url,
            "INSERT INTO closed_statements (period, document) VALUES ('2026-11', '{}')",
            "UPDATE books SET closed_through = '2026-11'",
        )
    assert (await verification.verify(store))["closed_through"] == "2026-10"


async def test_books_moved_around_the_triggers_are_named_by_verify(ledger):
    """A superuser who switches triggers off can still move the books: verify names the
    period that closed without its statement, with the seconds left on no statement."""
    store, _, owner_url = ledger
    await sql(owner_url, "SET LOCAL session_replication_role = replica", "UPDATE books SET closed_through = '2026-11'")
    assert (await statement_of(store, "2026-11"))["lines"] == []  # what the hostile test saw
    with pytest.raises(VerificationFailed, match=(
        "2026-11 is closed .* but has no stored statement: its 100,000 billed GPU-seconds are on no statement"
    )):
        await verification.verify(store)


async def test_a_statement_is_stored_only_by_the_close_of_its_period(ledger):
    _, app_url, _ = ledger
    with pytest.raises(asyncpg.CheckViolationError, match="not closed through it in the same transaction"):
        await sql(app_url, "INSERT INTO closed_statements (period, document) VALUES ('2026-11', '{}')")
    with pytest.raises(asyncpg.CheckViolationError, match="not closed through it in the same transaction"):
        await sql(app_url, "INSERT INTO period_closes (closed_through, member_ids) VALUES ('2026-12', '{}')")
    with pytest.raises(asyncpg.CheckViolationError, match="2026-09 is closed already"):
        await sql(app_url, "INSERT INTO closed_statements (period, document) VALUES ('2026-09', '{}')")
    assert [r["period"] for r in await sql(app_url, "SELECT period FROM closed_statements")] == ["2026-10"]


async def test_a_close_stores_its_statements_and_moves_the_books_and_closing_again_changes_nothing(ledger):
    store, app_url, _ = ledger
    counts = "SELECT (SELECT count(*) FROM closed_statements) s, (SELECT count(*) FROM period_closes) c, " \
             "(SELECT count(*) FROM journal_entries) j, (SELECT count(*) FROM postings) p"
    before = tuple((await sql(app_url, counts))[0].values())
    closed = await books.statement(store, "2026-11", close=True)
    document = orjson.loads(closed)
    assert document["closed"] is True
    assert sum(line["gpu_seconds"] for line in document["lines"]) == NOVEMBER_SECONDS
    stored = await sql(app_url, "SELECT document FROM closed_statements WHERE period = '2026-11'")
    assert bytes(stored[0]["document"]) == closed
    assert (await sql(app_url, "SELECT closed_through FROM books"))[0]["closed_through"] == "2026-11"
    after = tuple((await sql(app_url, counts))[0].values())
    assert after[:2] == (before[0] + 1, before[1] + 1) and after[2] > before[2]
    # Closing what is closed changes nothing: the same bytes, no row added.
    assert await books.statement(store, "2026-11", close=True) == closed
    assert await books.statement(store, "2026-10", close=True) == await books.statement(store, "2026-10")
    assert tuple((await sql(app_url, counts))[0].values()) == after
    report = await verification.verify(store)
    assert report["closed_periods"] == ["2026-10", "2026-11"] and report["statements_recomputed"] == 2
    assert report["rollups"]["gpu_seconds"] == 2 * 3600 + NOVEMBER_SECONDS


async def test_a_made_up_statement_the_database_accepts_is_caught_by_verify(ledger):
    """The database can check that a statement is there, not that it is the right one: a
    close with an empty statement of 2026-11 goes through, and verify names it."""
    store, app_url, _ = ledger
    empty = orjson.loads(await books.statement(store, "2026-11"))
    empty.update(closed=True, lines=[], tenant_invoices=[], member_invoices=[], transfers=[])
    empty["net_yen"] = dict.fromkeys(empty["net_yen"], 0)
    conn = await asyncpg.connect(app_url)
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO closed_statements (period, document) VALUES ('2026-11', $1)",
                               orjson.dumps(empty))
            await conn.execute("INSERT INTO period_closes (closed_through, member_ids) VALUES ('2026-11', $1)",
                               sorted(empty["net_yen"]))
            await conn.execute("UPDATE books SET closed_through = '2026-11'")
    finally:
        await conn.close()
    assert (await statement_of(store, "2026-11"))["lines"] == []
    with pytest.raises(VerificationFailed, match=r"2026-11 is not what .*\(first difference: lines\)"):
        await verification.verify(store)


async def test_an_edited_rollup_is_caught(ledger):
    store, _, owner_url = ledger
    assert (await verification.verify(store))["rollups"] == {"rows": 30, "gpu_seconds": 2 * 3600 + NOVEMBER_SECONDS}
    # The owner may write the rollups (its triggers keep them); an edit of one hour shows
    # as more seconds on the open statement, and verify names the hour.
    await sql(owner_url, f"UPDATE usage_hours SET seconds = seconds + 600 WHERE hour_start = {NOV_10_JST + 7200}")
    assert sum(line["gpu_seconds"] for line in (await statement_of(store, "2026-11"))["lines"]) == NOVEMBER_SECONDS + 600
    with pytest.raises(VerificationFailed, match=(
        r"usage_hours\) differ from the billed seconds in 1 row: 2026-11-09T17:00:00Z sakura/kddi/acme/H200 "
        r"service 2026-11 booked 2026-11 region -: 4200 rolled up, 3600 billed"
    )):
        await verification.verify(store)
    # A row with no billed seconds behind it is one too.
    await sql(owner_url, "UPDATE usage_hours SET seconds = seconds - 600",
              "INSERT INTO usage_hours VALUES (0, 'sakura', 'kddi', 'ghost', 'H200', '1970-01', '1970-01', NULL, 5)")
    with pytest.raises(VerificationFailed, match="ghost/H200 .*: 5 rolled up, 0 billed"):
        await verification.verify(store)


async def test_an_edited_stored_statement_is_caught(ledger):
    store, _, owner_url = ledger
    document = orjson.loads(await books.statement(store, "2026-10"))
    document["lines"][0]["retail_yen"] -= 100
    conn = await asyncpg.connect(owner_url)  # the owner may: append-only binds the others
    try:
        await conn.execute("UPDATE closed_statements SET document = $1 WHERE period = '2026-10'", orjson.dumps(document))
    finally:
        await conn.close()
    with pytest.raises(VerificationFailed, match=r"2026-10 is not what .*\(first difference: lines\)"):
        await verification.verify(store)
