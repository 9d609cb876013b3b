-- One append-only policy, applied per table; and books that close only over stored
-- statements.
--
-- 1. The policy. `ledger_make_append_only(table)` is the one definition of what an
--    append-only table is: a row trigger that refuses UPDATE and DELETE and a statement
--    trigger that refuses TRUNCATE to every role but the tables' owner (who runs
--    migrations, and whose SECURITY DEFINER functions keep the rollups), whatever a
--    mistaken GRANT gave; and for the application's role SELECT (and INSERT unless the
--    table is written only by the database itself), nothing else. It is applied below to
--    every table it covers, replacing the triggers that migrations 0002, 0003 and 0005
--    made with copies of one loop. PostgreSQL clones row triggers onto every partition,
--    present and future, but not TRUNCATE triggers, so the TRUNCATE part
--    (`ledger_refuse_truncate`) walks the partitions, and `ledger_ensure_partitions` applies
--    it to every partition it makes (claims' partitions too: claims may grow, never be
--    truncated). tests/postgres/test_append_only.py lists every table of the schema and
--    requires this policy of each one not on its commented allow-list.
--
-- 2. Closing. The books move only over stored statements: when `books.closed_through`
--    moves, every period it closes (from the one after the previous closed_through, or
--    from the first booked usage, through the new one; as ledger.service.books closes)
--    must already have its statement in closed_statements and the close its row in
--    period_closes, or the UPDATE is refused. Both are written only by the close that
--    closes their period: not into a period that is closed already, and a commit that
--    did not move the books through them is refused (deferred constraint triggers).
--
--    Why a trigger and not a SECURITY DEFINER ledger_close() with UPDATE revoked from the
--    application's role: every intake batch and catalog load reads the books row FOR
--    SHARE and every close FOR UPDATE, and PostgreSQL grants those row locks only to a
--    role with UPDATE privilege on the table, so revoking it would move every lock of the
--    books into definer functions too (the intake path included); and a revoked privilege
--    binds only the role it was revoked from, while a trigger binds every role (a mistaken
--    GRANT, the owner) but a superuser who switches triggers off, whom `gpuledger verify
--    --db` catches (it checks that every closed period has its statement, and recomputes
--    each one). A trigger cannot check that a statement is the right one (rating is the
--    application's), only that it is there: a made-up statement is caught by verify --db.

-- The owner is found by the table's oid: cheaper than pg_tables by name (usage_hours rows
-- are updated by the rollup triggers in every intake batch), and right for partitions.
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused for role %', TG_TABLE_NAME, TG_OP, current_user
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- TRUNCATE refused to all but the owner, on a table and on each of its partitions.
CREATE FUNCTION ledger_refuse_truncate(target regclass) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    part regclass;
BEGIN
    -- pg_partition_tree lists a partitioned table and its partitions; a plain table, nothing.
    FOR part IN SELECT target UNION SELECT relid FROM pg_partition_tree(target) LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s',
                       (SELECT relname FROM pg_class WHERE oid = part) || '_no_truncate', part);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION ledger_append_only()',
                       (SELECT relname FROM pg_class WHERE oid = part) || '_no_truncate', part);
    END LOOP;
END
$$;

-- The append-only policy of one table (see 1. above). `app_inserts`: whether the
-- application's role writes its rows (false: only the database's own functions do).
CREATE FUNCTION ledger_make_append_only(target regclass, app_inserts boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = target);
BEGIN
    IF (SELECT relispartition FROM pg_class WHERE oid = target) THEN
        RAISE EXCEPTION 'ledger_make_append_only(%): apply it to the partitioned table', name;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', name || '_append_only', target);
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION ledger_append_only()', name || '_append_only', target);
    PERFORM ledger_refuse_truncate(target);
    EXECUTE format('REVOKE ALL ON %s FROM gpuledger_app', target);
    EXECUTE format('GRANT %s ON %s TO gpuledger_app',
                   CASE WHEN app_inserts THEN 'SELECT, INSERT' ELSE 'SELECT' END, target);
END
$$;

-- The policy is the owner's to apply (in migrations), not the application's.
REVOKE ALL ON FUNCTION ledger_make_append_only(regclass, boolean), ledger_refuse_truncate(regclass) FROM PUBLIC;

-- The ledger's tables, written by the application and never changed.
SELECT ledger_make_append_only(t) FROM unnest(ARRAY[
    'catalog_settings', 'catalog_loads', 'members', 'skus', 'retail_prices', 'agreements',
    'gpu_registrations', 'gpu_retirements', 'grants', 'closed_statements', 'period_closes',
    'journal_entries', 'postings', 'dead_letters', 'dead_letter_replays', 'intake_tallies',
    'api_tokens', 'api_token_revocations', 'api_secrets'
]::regclass[]) AS t;
-- Written only by the database: the rollups (the claims' and registrations' triggers, as
-- the owner), where monthly partitions begin, and which migrations were applied.
SELECT ledger_make_append_only(t, app_inserts => false)
FROM unnest(ARRAY['usage_hours', 'partitioning', 'schema_migrations']::regclass[]) AS t;
-- Tables that are not append-only keep their own guards (claims_grow_only,
-- books_forward_only) and refuse TRUNCATE like every other.
SELECT ledger_refuse_truncate(t) FROM unnest(ARRAY['claims', 'books']::regclass[]) AS t;

-- New monthly partitions refuse TRUNCATE too (otherwise as in 0008).
CREATE OR REPLACE FUNCTION ledger_ensure_partitions(months_ahead int DEFAULT 2) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month_start bigint := greatest(ledger_month_start(extract(epoch FROM now())::bigint),
                                   (SELECT first_month FROM partitioning WHERE id = 1));
    month_end bigint;
    parent text;
    name text;
    taken boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(x'67706C70'::int);  -- one maker at a time (workers, migrate)
    FOR i IN 0 .. months_ahead LOOP
        month_end := ledger_next_month_start(month_start);
        FOREACH parent IN ARRAY ARRAY['claims', 'usage_hours'] LOOP
            name := parent || '_' || to_char(to_timestamp(month_start) AT TIME ZONE 'Asia/Tokyo', 'YYYY_MM');
            CONTINUE WHEN to_regclass(name) IS NOT NULL;
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE hour_start >= %s AND hour_start < %s)',
                           parent || '_default', month_start, month_end) INTO taken;
            CONTINUE WHEN taken;
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s) WITH (%s)',
                           name, parent, month_start, month_end, ledger_partition_storage());
            PERFORM ledger_refuse_truncate(name::regclass);
            RETURN NEXT name;
        END LOOP;
        month_start := month_end;
    END LOOP;
END
$$;

-- Periods first..last ('YYYY-MM', inclusive; none when first > last).
CREATE FUNCTION ledger_periods(first text, last text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(month, 'YYYY-MM')
    FROM generate_series(to_date(first, 'YYYY-MM'), to_date(last, 'YYYY-MM'), interval '1 month') AS month
$$;

-- When the books move: every period they close has its stored statement, and the close
-- its period_closes row (which names the members its empty periods list). Checked at the
-- UPDATE itself, since a close stores them before it moves the books.
CREATE FUNCTION books_close_over_statements() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    first text;
    missing text;
BEGIN
    IF NEW.closed_through IS NULL OR NEW.closed_through IS NOT DISTINCT FROM OLD.closed_through THEN
        RETURN NULL;  -- books_forward_only refuses every other move that is not forward
    END IF;
    IF OLD.closed_through IS NOT NULL THEN
        first := to_char(to_date(OLD.closed_through, 'YYYY-MM') + interval '1 month', 'YYYY-MM');
    ELSE
        first := least(NEW.closed_through, (SELECT min(booking_period) FROM claims));
    END IF;
    SELECT string_agg(p, ', ' ORDER BY p) INTO missing
    FROM ledger_periods(first, NEW.closed_through) AS p
    WHERE NOT EXISTS (SELECT 1 FROM closed_statements s WHERE s.period = p);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'books: closing through % needs the stored statement of every period it closes; none is stored for %',
            NEW.closed_through, missing USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM period_closes WHERE closed_through = NEW.closed_through) THEN
        RAISE EXCEPTION 'books: closing through % needs its row in period_closes', NEW.closed_through
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER books_close_over_statements AFTER UPDATE ON books
    FOR EACH ROW EXECUTE FUNCTION books_close_over_statements();

-- A stored statement (closed_statements.period) or close (period_closes.closed_through),
-- the column named by the trigger's argument: BEFORE INSERT, not of a period closed
-- already; deferred to commit, of a period the books are then closed through.
CREATE FUNCTION ledger_stored_by_its_close() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    period text := to_jsonb(NEW) ->> TG_ARGV[0];
    closed text := (SELECT closed_through FROM books WHERE id = 1);
BEGIN
    IF TG_WHEN = 'BEFORE' THEN
        IF closed IS NOT NULL AND period <= closed THEN
            RAISE EXCEPTION '%: % is closed already; only the close of a period stores it', TG_TABLE_NAME, period
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF closed IS NULL OR period > closed THEN
        RAISE EXCEPTION '%: % was stored, but the books were not closed through it in the same transaction',
            TG_TABLE_NAME, period USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER closed_statements_of_open_periods BEFORE INSERT ON closed_statements
    FOR EACH ROW EXECUTE FUNCTION ledger_stored_by_its_close('period');
CREATE CONSTRAINT TRIGGER closed_statements_closed_at_commit AFTER INSERT ON closed_statements
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_stored_by_its_close('period');
CREATE TRIGGER period_closes_of_open_periods BEFORE INSERT ON period_closes
    FOR EACH ROW EXECUTE FUNCTION ledger_stored_by_its_close('closed_through');
CREATE CONSTRAINT TRIGGER period_closes_closed_at_commit AFTER INSERT ON period_closes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_stored_by_its_close('closed_through');
