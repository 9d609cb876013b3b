"""The ledger protects itself: append-only tables, balanced entries, a verifiable chain.

Given the public scenario run to its end on a fresh stack (two periods closed, their
journal posted), then the application's role cannot change history, the database
refuses an unbalanced entry, the journal verifies, its accounts balance and reconcile,
and an edit made by a superuser with the triggers disabled is found and named.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from ledger.settings import APP_ROLE, with_user
from tests.db import fetch
from tests.scenario import batch_bytes, run_steps, scenario_dirs

pytestmark = pytest.mark.infra

SCENARIO = scenario_dirs()[0]
LEDGER_TABLES = [
    "catalog_settings", "catalog_loads", "members", "skus", "retail_prices", "agreements",
    "closed_statements", "period_closes", "dead_letters", "intake_tallies", "journal_entries",
    "postings", "claims", "usage_hours", "statement_transfers", "payments", "payment_decisions",
]


@pytest.fixture(scope="module")
def closed(make_stack, tmp_path_factory):
    stack = make_stack()
    folder = tmp_path_factory.mktemp("integrity")
    run_steps(stack, SCENARIO, folder)
    return stack


def execute(url: str, *statements: str, role: str | None = None) -> None:
    """Run statements in one transaction (optionally SET ROLE first); raise what PostgreSQL raises."""

    async def run():
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                if role:
                    await conn.execute(f'SET ROLE "{role}"')
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.mark.parametrize("table", LEDGER_TABLES)
@pytest.mark.parametrize("operation", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}", "TRUNCATE {t} CASCADE"])
def test_the_application_role_cannot_change_history(closed, table, operation):
    app_url = with_user(closed.database_url, APP_ROLE)
    column = fetch(
        closed.database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position LIMIT 1",
        table,
    )[0]["column_name"]
    with pytest.raises(asyncpg.PostgresError) as refused:
        execute(app_url, operation.format(t=table, c=column))
    assert isinstance(
        refused.value, asyncpg.InsufficientPrivilegeError | asyncpg.CheckViolationError
    ), refused.value


@pytest.mark.parametrize("table", ["journal_entries", "postings", "closed_statements", "dead_letters"])
def test_triggers_refuse_even_a_role_granted_everything(closed, table):
    execute(
        closed.database_url,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mistaken_admin') "
        "THEN CREATE ROLE mistaken_admin; END IF; END $$",
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO mistaken_admin",
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        execute(closed.database_url, f"DELETE FROM {table}", role="mistaken_admin")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        execute(closed.database_url, f"TRUNCATE {table} CASCADE", role="mistaken_admin")


def test_an_unbalanced_entry_is_refused(closed):
    head = fetch(closed.database_url, "SELECT max(seq) AS s FROM journal_entries")[0]["s"]
    app_url = with_user(closed.database_url, APP_ROLE)
    seq = head + 1
    insert_entry = (
        "INSERT INTO journal_entries (seq, period, kind, reference, prev_hash, hash) VALUES "
        f"({seq}, '2026-11', 'transfer', '{{}}', decode(repeat('00', 32), 'hex'), decode(repeat('ab', 32), 'hex'))"
    )
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        execute(
            app_url,
            insert_entry,
            f"INSERT INTO postings VALUES ({seq}, 0, 'kddi/cash', 100), ({seq}, 1, 'sakura/cash', -99)",
        )


def test_billed_seconds_only_grow_and_closed_periods_do_not_move(closed):
    app_url = with_user(closed.database_url, APP_ROLE)
    with pytest.raises(asyncpg.CheckViolationError, match="closed"):
        execute(app_url, "UPDATE claims SET bits = bits WHERE booking_period = '2026-09'")
    with pytest.raises(asyncpg.CheckViolationError, match="reopened"):
        execute(app_url, "UPDATE books SET closed_through = '2026-09'")


def test_the_app_role_cannot_close_a_period_by_moving_the_books(closed):
    """Moving the books by hand would print 2026-11 as closed and empty, its billed seconds
    on no statement: refused, since no statement of 2026-11 is stored."""
    app_url = with_user(closed.database_url, APP_ROLE)
    november = json.loads(closed.run("settle", "2026-11").stdout)
    with pytest.raises(asyncpg.CheckViolationError, match="none is stored for 2026-11"):
        execute(app_url, "UPDATE books SET closed_through = '2026-11'")
    assert json.loads(closed.run("settle", "2026-11").stdout) == november
    assert closed.json("verify", "--db")["closed_through"] == "2026-10"


def test_verify_db_recomputes_the_rollups_and_exits_4_on_an_edited_one(closed):
    report = closed.json("verify", "--db")
    assert report["rollups"]["rows"] > 0 and report["statements_recomputed"] == 2
    keys = ("hour_start", "provider", "reseller", "tenant", "sku", "service_period", "booking_period")
    row = fetch(closed.database_url, f"SELECT {', '.join(keys)} FROM usage_hours WHERE booking_period = '2026-10' "
                "AND seconds > 0 AND region IS NULL ORDER BY 1, 2, 3, 4, 5, 6 LIMIT 1")[0]
    where = "WHERE region IS NULL AND " + " AND ".join(
        f"{key} = {row[key]}" if key == "hour_start" else f"{key} = '{row[key]}'" for key in keys
    )
    # The tables' owner may write the rollups (its triggers keep them).
    execute(closed.database_url, f"UPDATE usage_hours SET seconds = seconds + 1 {where}")
    try:
        completed = closed.run("verify", "--db", check=False)
    finally:
        execute(closed.database_url, f"UPDATE usage_hours SET seconds = seconds - 1 {where}")
    assert completed.returncode == 4
    assert completed.stdout == b""
    assert b"the hourly rollups (usage_hours) differ from the billed seconds in 1 row" in completed.stderr
    assert closed.json("verify", "--db")["verified"] is True


def test_the_journal_verifies_balances_and_reconciles(closed):
    report = closed.json("verify", "--db")
    assert report["verified"] is True
    assert report["closed_periods"] == ["2026-09", "2026-10"]
    assert report["trial_balance_yen"] == 0
    balances = {
        row["account"]: row["total"]
        for row in fetch(closed.database_url, "SELECT account, sum(amount_yen)::bigint AS total FROM postings GROUP BY account")
    }
    assert sum(balances.values()) == 0
    # Every clearing account is settled by the transfers.
    assert all(v == 0 for a, v in balances.items() if a.endswith("/settlement/clearing"))
    # Both sides of every member invoice agree, invoice by invoice.
    for period in ("2026-09", "2026-10"):
        statement = json.loads(closed.run("settle", period).stdout)
        for invoice in statement["member_invoices"]:
            provider, reseller = invoice["provider"], invoice["reseller"]
            sides = fetch(
                closed.database_url,
                "SELECT e.kind, p.amount_yen FROM postings p JOIN journal_entries e ON e.seq = p.entry_seq "
                "WHERE e.period = $1 AND e.kind LIKE 'member_invoice_%' AND p.account = ANY($2)",
                period,
                [f"{provider}/receivable/member/{reseller}", f"{reseller}/payable/member/{provider}"],
            )
            amounts = {row["kind"]: row["amount_yen"] for row in sides}
            assert amounts == {
                "member_invoice_provider": invoice["total_yen"],
                "member_invoice_reseller": -invoice["total_yen"],
            }


TAMPERING = {
    "an edited amount": (
        "UPDATE postings SET amount_yen = amount_yen + 1 WHERE entry_seq = 7 AND idx = 0",
        "UPDATE postings SET amount_yen = amount_yen - 1 WHERE entry_seq = 7 AND idx = 1",
    ),
    "a deleted entry": ("DELETE FROM postings WHERE entry_seq = 7", "DELETE FROM journal_entries WHERE seq = 7"),
    "a reordered pair": (
        "UPDATE postings SET entry_seq = entry_seq + 1000 WHERE entry_seq IN (7, 8)",
        "UPDATE journal_entries SET seq = 1007 WHERE seq = 7",
        "UPDATE journal_entries SET seq = 7 WHERE seq = 8",
        "UPDATE journal_entries SET seq = 8 WHERE seq = 1007",
        "UPDATE postings SET entry_seq = 8 WHERE entry_seq = 1007",
        "UPDATE postings SET entry_seq = 7 WHERE entry_seq = 1008",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING), ids=str)
def test_a_superuser_edit_is_found_and_named(make_stack, tmp_path, tampering):
    stack = make_stack()
    for name in ("batch1",):
        (tmp_path / f"{name}.ndjson").write_bytes(batch_bytes(SCENARIO, name))
    stack.run("catalog", "load", str(SCENARIO / "catalog.toml"))
    stack.run("ingest", str(tmp_path / "batch1.ndjson"), "--wait", "--timeout", "600")
    stack.run("settle", "2026-09", "--close")
    assert stack.json("verify", "--db")["verified"] is True
    # A superuser switches the triggers off for the session and edits history.
    execute(
        stack.database_url,
        "SET LOCAL session_replication_role = replica",
        "ALTER TABLE postings DROP CONSTRAINT postings_entry_seq_fkey",
        *TAMPERING[tampering],
    )
    completed = stack.run("verify", "--db", check=False)
    assert completed.returncode == 4
    message = completed.stderr.decode()
    assert "journal entry 7" in message or "entry 8" in message, message


def test_a_catalog_version_inside_a_closed_period_is_refused_and_a_reload_adds_nothing(closed, tmp_path):
    again = closed.json("catalog", "load", str(SCENARIO / "catalog.toml"))
    assert again["members_added"] == again["retail_prices_added"] == again["agreements_added"] == 0
    late = tmp_path / "late.toml"
    late.write_text(
        '[[retail_prices]]\nreseller = "kddi"\nsku = "H200"\nyen_per_gpu_hour = "999"\n'
        'effective_from = "2026-10-15T00:00:00+09:00"\n'
    )
    completed = closed.run("catalog", "load", str(late), check=False)
    assert completed.returncode == 2
    assert b"inside a closed period" in completed.stderr
    open_period = tmp_path / "open.toml"
    open_period.write_text(
        '[[retail_prices]]\nreseller = "kddi"\nsku = "H200"\nyen_per_gpu_hour = "999"\n'
        'effective_from = "2026-11-01T00:00:00+09:00"\n'
    )
    assert closed.json("catalog", "load", str(open_period))["retail_prices_added"] == 1
    assert closed.json("verify", "--db")["verified"] is True


def test_a_consistent_rewrite_of_the_whole_chain_is_caught_alone_and_by_a_signed_head(make_stack, tmp_path):
    """A superuser who rewrites a closed statement and re-posts and re-hashes the whole
    journal is caught by `verify --db` alone (it recomputes every closed statement from the
    billed seconds, which a closed period never changes), and by the chain head signed in
    a bundle an auditor already holds."""
    from ledger.domain import journal
    from ledger.domain.statement import Statement

    stack = make_stack()
    (tmp_path / "batch1.ndjson").write_bytes(batch_bytes(SCENARIO, "batch1"))
    stack.run("catalog", "load", str(SCENARIO / "catalog.toml"))
    stack.run("ingest", str(tmp_path / "batch1.ndjson"), "--wait", "--timeout", "600")
    stack.run("settle", "2026-09", "--close")
    stack.run("keys", "init")
    public_key = tmp_path / "ledger.pub"
    public_key.write_bytes(stack.run("keys", "public").stdout)
    stack.run("export", "2026-09", "--out", str(tmp_path / "bundle"))

    statement = json.loads(stack.run("settle", "2026-09").stdout)
    invoice = statement["tenant_invoices"][0]
    invoice["subtotal_yen"] -= 100
    invoice["total_yen"] -= 100
    entries = journal.chain(
        "2026-09", journal.entries_for_statement(Statement.from_document(statement)), 0, journal.GENESIS_HASH
    )

    async def rewrite():
        conn = await asyncpg.connect(stack.database_url)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(
                    "UPDATE closed_statements SET document = $1 WHERE period = '2026-09'",
                    json.dumps(statement, separators=(",", ":")).encode(),
                )
                await conn.execute("DELETE FROM postings")
                await conn.execute("DELETE FROM journal_entries")
                for e in entries:
                    await conn.execute(
                        "INSERT INTO journal_entries (seq, period, kind, reference, prev_hash, hash)"
                        " VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
                        e.seq, e.period, e.kind, json.dumps(e.reference), e.prev_hash, e.hash,
                    )
                    for idx, (account, amount) in enumerate(e.postings):
                        await conn.execute(
                            "INSERT INTO postings VALUES ($1, $2, $3, $4)", e.seq, idx, account, amount
                        )
        finally:
            await conn.close()

    asyncio.run(rewrite())
    alone = stack.run("verify", "--db", check=False)
    assert alone.returncode == 4 and b"the stored statement was edited" in alone.stderr
    caught = stack.run(
        "verify", "--db", "--anchor", str(tmp_path / "bundle"), "--public-key", str(public_key),
        check=False,
    )
    assert caught.returncode == 4
