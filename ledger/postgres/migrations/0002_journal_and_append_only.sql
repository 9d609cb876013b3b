-- The double-entry journal, and the database's own enforcement of an append-only ledger.
--
-- The application connects as role gpuledger_app: it may INSERT and SELECT the ledger
-- tables but not UPDATE, DELETE or TRUNCATE them, and triggers refuse those to every
-- role but the tables' owner (who runs migrations). Billed seconds (claims) may only
-- grow, and never in a closed period; the books only move forward.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gpuledger_app') THEN
        CREATE ROLE gpuledger_app LOGIN;
    END IF;
END
$$;

-- Journal entries, hash-chained: hash = SHA-256(prev_hash || canonical entry), computed
-- by the application (docs/auditor-bundle.md) and checked by `gpuledger verify --db`.
CREATE TABLE journal_entries (
    seq         bigint PRIMARY KEY CHECK (seq >= 1),
    period      text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    kind        text NOT NULL CHECK (kind IN ('tenant_invoice', 'member_invoice_reseller',
                    'member_invoice_provider', 'netting', 'transfer')),
    reference   jsonb NOT NULL,
    prev_hash   bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_entries_by_period ON journal_entries (period, seq);

CREATE TABLE postings (
    entry_seq   bigint NOT NULL REFERENCES journal_entries (seq),
    idx         int NOT NULL CHECK (idx >= 0),
    account     text NOT NULL CHECK (account ~ '^[a-z][a-z0-9-]{1,31}/'),
    amount_yen  bigint NOT NULL,
    PRIMARY KEY (entry_seq, idx)
);
CREATE INDEX postings_by_account ON postings (account);

-- Every entry balances: checked at commit, once all its postings are in.
CREATE FUNCTION journal_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry bigint;
    total numeric;
    n int;
BEGIN
    IF TG_TABLE_NAME = 'postings' THEN
        entry := NEW.entry_seq;
    ELSE
        entry := NEW.seq;
    END IF;
    SELECT coalesce(sum(amount_yen), 0), count(*) INTO total, n FROM postings WHERE entry_seq = entry;
    IF n < 2 OR total <> 0 THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings summing to % yen', entry, n, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER journal_entry_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();
CREATE CONSTRAINT TRIGGER posting_entry_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();

-- UPDATE, DELETE and TRUNCATE are for the owner alone (migrations); everyone else gets
-- an error, whatever privileges a mistaken GRANT gave them.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user = (SELECT tableowner FROM pg_tables
                       WHERE schemaname = TG_TABLE_SCHEMA AND tablename = TG_TABLE_NAME) THEN
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

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['catalog_settings', 'catalog_loads', 'members', 'skus',
        'retail_prices', 'agreements', 'closed_statements', 'period_closes', 'dead_letters',
        'intake_tallies', 'journal_entries', 'postings']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION ledger_append_only()', name || '_append_only', name);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION ledger_append_only()', name || '_no_truncate', name);
        EXECUTE format('GRANT SELECT, INSERT ON %I TO gpuledger_app', name);
    END LOOP;
END
$$;

-- Billed seconds only grow, keep their keys, and never change in a closed period.
ALTER TABLE claims ADD CONSTRAINT claims_seconds_are_bits CHECK (seconds = bit_count(bits));

CREATE FUNCTION claims_grow_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed text;
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RETURN ledger_append_only_check(TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, TG_LEVEL, OLD);
    END IF;
    SELECT closed_through INTO closed FROM books WHERE id = 1;
    IF closed IS NOT NULL AND NEW.booking_period <= closed THEN
        RAISE EXCEPTION 'claims: % is closed; seconds cannot be booked into it', NEW.booking_period
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF (OLD.gpu_uuid, OLD.hour_start, OLD.provider, OLD.reseller, OLD.tenant, OLD.sku,
            OLD.service_period, OLD.booking_period)
           IS DISTINCT FROM
           (NEW.gpu_uuid, NEW.hour_start, NEW.provider, NEW.reseller, NEW.tenant, NEW.sku,
            NEW.service_period, NEW.booking_period) THEN
            RAISE EXCEPTION 'claims: the keys of billed seconds never change' USING ERRCODE = 'check_violation';
        END IF;
        IF (('x' || encode(OLD.bits, 'hex'))::bit(3600) & ~('x' || encode(NEW.bits, 'hex'))::bit(3600))
           <> repeat('0', 3600)::bit(3600) THEN
            RAISE EXCEPTION 'claims: billed seconds cannot be removed (gpu %, hour %)', NEW.gpu_uuid, NEW.hour_start
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION ledger_append_only_check(schema_name text, table_name text, op text, level text, old_row anyelement)
RETURNS anyelement LANGUAGE plpgsql AS $$
BEGIN
    IF current_user = (SELECT tableowner FROM pg_tables WHERE schemaname = schema_name AND tablename = table_name) THEN
        RETURN old_row;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused for role %', table_name, op, current_user
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER claims_grow_only BEFORE INSERT OR UPDATE OR DELETE ON claims
    FOR EACH ROW EXECUTE FUNCTION claims_grow_only();
CREATE TRIGGER claims_no_truncate BEFORE TRUNCATE ON claims
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
GRANT SELECT, INSERT, UPDATE ON claims TO gpuledger_app;

-- The books only move forward.
CREATE FUNCTION books_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RETURN ledger_append_only_check(TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, TG_LEVEL, OLD);
    END IF;
    IF OLD.closed_through IS NOT NULL
       AND (NEW.closed_through IS NULL OR NEW.closed_through <= OLD.closed_through) THEN
        RAISE EXCEPTION 'books: closed through %, they cannot be reopened or moved back', OLD.closed_through
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER books_forward_only BEFORE UPDATE OR DELETE ON books
    FOR EACH ROW EXECUTE FUNCTION books_forward_only();
CREATE TRIGGER books_no_truncate BEFORE TRUNCATE ON books
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
-- UPDATE: closing moves closed_through; SELECT ... FOR SHARE needs it too.
GRANT SELECT, UPDATE ON books TO gpuledger_app;

-- Operational tables: row locks of GPUs, and Kafka positions (forgotten with a topic).
GRANT SELECT, INSERT, UPDATE ON gpus TO gpuledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON consumer_positions TO gpuledger_app;
GRANT SELECT ON schema_migrations TO gpuledger_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO gpuledger_app;
