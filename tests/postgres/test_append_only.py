"""Every table of the schema is append-only for the application's role, by the one policy
of migration 0011 (`ledger_make_append_only`), unless the allow-list below says which
change it may make and why.

The list of tables is read from the database (pg_class: tables, partitioned tables and
their partitions, including those `ledger_ensure_partitions()` makes ahead), so a table a
later migration adds fails here until it is given the policy or a line on the list.
"""

from __future__ import annotations

import asyncpg
import pytest

from ledger.domain.metering import ClaimKey
from ledger.postgres.store import PostgresStore
from ledger.settings import APP_ROLE
from tests.factories import instant

pytestmark = pytest.mark.infra

# What the application's role may change, per table (a partition follows its parent).
# Everything not named here must be refused to it, and a table not named at all must
# carry the append-only policy.
ALLOWED = {
    # Billed seconds grow: claims_grow_only refuses removing a second, changing a key and
    # writing a closed booking period (and DELETE); TRUNCATE is refused as everywhere.
    "claims": {"UPDATE"},
    # The books move forward, and only over stored statements (books_forward_only,
    # books_close_over_statements); the UPDATE privilege is also what PostgreSQL asks of
    # the FOR SHARE / FOR UPDATE locks every batch and every close take on them.
    "books": {"UPDATE"},
    # One row per GPU, locked FOR UPDATE by every batch (a lock needs UPDATE); no amounts.
    "gpus": {"UPDATE"},
    # The next Kafka offset per partition moves with every batch; `forget_positions`
    # deletes the positions of a topic that was recreated.
    "consumer_positions": {"UPDATE", "DELETE"},
    # A token's last use, rewritten at most once a minute.
    "api_token_uses": {"UPDATE"},
    # The count of voids, closes and replays (the ledger's version): the app role only
    # reads it; the owner's triggers add to it (ledger_changes_grow_only: never down).
    "ledger_changes": set(),
}
CHANGES = ("UPDATE", "DELETE", "TRUNCATE")
OTHER_PRIVILEGES = ("REFERENCES", "TRIGGER")

# Row triggers: tgtype bits (pg_trigger.h): ROW 1, BEFORE 2, DELETE 8, UPDATE 16, TRUNCATE 32.
TABLES = """
SELECT c.oid, c.relname, c.relkind = 'p' AS partitioned,
       (SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid) AS parent,
       ARRAY(SELECT privilege FROM unnest($1::text[]) AS privilege
             WHERE has_table_privilege($2, c.oid, privilege)) AS privileges,
       EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgfoid = 'ledger_append_only'::regproc
               AND t.tgenabled <> 'D' AND t.tgtype & (1 | 2 | 8 | 16) = (1 | 2 | 8 | 16)) AS refuses_rows,
       EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgfoid = 'ledger_append_only'::regproc
               AND t.tgenabled <> 'D' AND t.tgtype & (1 | 2 | 32) = (2 | 32)) AS refuses_truncate
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""


@pytest.fixture
async def schema(fresh_database, postgres_server):
    """Every table of a migrated database whose monthly partitions reach a year ahead, as
    (owner's URL, app role's URL, rows of TABLES)."""
    owner_url = postgres_server.rsplit("/", 1)[0] + "/" + fresh_database.rsplit("/", 1)[1]
    conn = await asyncpg.connect(fresh_database)  # as the workers do, as the app role
    try:
        await conn.fetch("SELECT ledger_ensure_partitions(12)")
    finally:
        await conn.close()
    conn = await asyncpg.connect(owner_url)
    try:
        rows = await conn.fetch(TABLES, [*CHANGES, *OTHER_PRIVILEGES, "SELECT", "INSERT"], APP_ROLE)
    finally:
        await conn.close()
    return owner_url, fresh_database, rows


async def test_the_policy_is_applied_by_the_owner_only(schema):
    owner_url, _, _ = schema
    conn = await asyncpg.connect(owner_url)
    try:
        for function in ("ledger_make_append_only(regclass, boolean)", "ledger_refuse_truncate(regclass)"):
            assert not await conn.fetchval("SELECT has_function_privilege($1, $2, 'EXECUTE')", APP_ROLE, function)
    finally:
        await conn.close()


def test_every_table_is_append_only_for_the_app_role_or_on_the_allow_list(schema):
    _, _, rows = schema
    names = {row["relname"] for row in rows}
    assert {"claims", "usage_hours", "books", "journal_entries"} <= names
    assert sum(row["parent"] == "usage_hours" for row in rows) >= 13  # a year of months, history, default
    assert set(ALLOWED) <= names, "an allow-listed table no longer exists: take it off the list"
    for row in rows:
        name, parent = row["relname"], row["parent"]
        privileges = set(row["privileges"])
        if parent is not None:
            # A partition is reached through its parent only, and refuses TRUNCATE itself
            # (PostgreSQL clones row triggers onto partitions, not TRUNCATE triggers).
            assert privileges == set(), f"{name}: the app role holds {privileges} on a partition"
            assert row["refuses_truncate"], f"{name}: a partition without the no-truncate trigger"
            if parent not in ALLOWED:
                assert row["refuses_rows"], f"{name}: a partition of {parent} without the append-only trigger"
            continue
        allowed = ALLOWED.get(name, set())
        assert privileges & set(CHANGES) == allowed, f"{name}: the app role may {privileges & set(CHANGES)}, allowed {allowed}"
        assert not privileges & set(OTHER_PRIVILEGES), f"{name}: the app role holds {privileges}"
        if name not in ALLOWED:
            assert row["refuses_rows"] and row["refuses_truncate"], (
                f"{name} is not append-only: apply ledger_make_append_only('{name}') in a migration, "
                "or put it on this test's allow-list with the reason"
            )


async def test_the_app_role_is_refused_every_change_the_list_does_not_allow(schema):
    _, app_url, rows = schema
    conn = await asyncpg.connect(app_url)
    try:
        for row in rows:
            name = row["relname"]
            allowed = set() if row["parent"] else ALLOWED.get(name, set())
            column = await conn.fetchval(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = 1", row["oid"]
            )
            for change in set(CHANGES) - allowed:
                statement = {
                    "UPDATE": f'UPDATE "{name}" SET "{column}" = "{column}"',
                    "DELETE": f'DELETE FROM "{name}"',
                    "TRUNCATE": f'TRUNCATE "{name}" CASCADE',
                }[change]
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with conn.transaction():
                        await conn.execute(statement)
    finally:
        await conn.close()


async def test_triggers_refuse_a_role_granted_everything_on_every_table_and_partition(schema):
    """A mistaken GRANT ALL: the policy's triggers still refuse TRUNCATE on every table but
    those the list allows, partitions included, and UPDATE of rows written as the app."""
    owner_url, app_url, rows = schema
    store = await PostgresStore.connect(app_url)
    try:
        hour = instant("2026-12-10T00:00:00+09:00")
        async with store.intake() as tx:  # a claim, so usage_hours_2026_12 has a row
            await tx.write_claims([(ClaimKey("GPU-1", hour, ("sakura", "kddi", "acme", "H200"), "2026-12", "2026-12"), 1)])
    finally:
        await store.close()
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mistaken_admin') "
            "THEN CREATE ROLE mistaken_admin; END IF; END $$"
        )
        await conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO mistaken_admin")
        for row in rows:
            name = row["relname"]
            if name in ALLOWED and name not in ("claims", "books", "ledger_changes"):
                continue  # operational tables: the allow-list says what is allowed
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                async with conn.transaction():
                    await conn.execute("SET LOCAL ROLE mistaken_admin")
                    await conn.execute(f'TRUNCATE "{name}" CASCADE')
        for table in ("usage_hours", "usage_hours_2026_12"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                async with conn.transaction():
                    await conn.execute("SET LOCAL ROLE mistaken_admin")
                    await conn.execute(f"UPDATE {table} SET seconds = seconds + 1")
    finally:
        await conn.close()
