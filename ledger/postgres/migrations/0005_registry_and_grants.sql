-- The GPU registry and grants (SPEC.md of 2026-11-30), check 7's count, and trigger
-- functions that no longer depend on the caller's search_path.

ALTER TABLE catalog_settings ADD COLUMN require_registered_gpus boolean NOT NULL DEFAULT false;

-- A provider's GPU, registered once; a retirement is added at most once, later.
CREATE TABLE gpu_registrations (
    uuid             text PRIMARY KEY CHECK (uuid ~ '^[\x21-\x7E]{1,128}$'),
    provider         text NOT NULL REFERENCES members,
    sku              text NOT NULL REFERENCES skus,
    region           text NOT NULL CHECK (region ~ '^[a-z][a-z0-9-]{1,31}$'),
    registered_from  bigint NOT NULL,
    revision         bigint NOT NULL REFERENCES catalog_loads
);
CREATE INDEX gpu_registrations_by_provider ON gpu_registrations (provider, sku, region);

CREATE TABLE gpu_retirements (
    uuid          text PRIMARY KEY REFERENCES gpu_registrations,
    retired_from  bigint NOT NULL,
    revision      bigint NOT NULL REFERENCES catalog_loads
);

-- Credit a member funds for a reseller's tenant; never changes once loaded.
CREATE TABLE grants (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    funder        text NOT NULL REFERENCES members,
    reseller      text NOT NULL REFERENCES members,
    tenant        text NOT NULL CHECK (tenant ~ '^[\x20-\x7E]{1,64}$'),
    amount_yen    bigint NOT NULL CHECK (amount_yen > 0),
    skus          text[] CHECK (skus IS NULL OR cardinality(skus) > 0),
    first_period  text NOT NULL CHECK (first_period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    last_period   text NOT NULL CHECK (last_period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    revision      bigint NOT NULL REFERENCES catalog_loads,
    CHECK (first_period <= last_period)
);

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['gpu_registrations', 'gpu_retirements', 'grants']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION ledger_append_only()', name || '_append_only', name);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION ledger_append_only()', name || '_no_truncate', name);
        EXECUTE format('GRANT SELECT, INSERT ON %I TO gpuledger_app', name);
    END LOOP;
END
$$;

-- Check 7 has its own count; `received` stays the sum of every outcome.
ALTER TABLE intake_tallies ADD COLUMN unregistered_gpu int NOT NULL DEFAULT 0;
ALTER TABLE intake_tallies DROP COLUMN received;
ALTER TABLE intake_tallies ADD COLUMN received int GENERATED ALWAYS AS (
    accepted + duplicate + malformed + schema + unknown_member + unknown_sku + future
    + too_late + unregistered_gpu + no_price + no_agreement + conflict) STORED;

-- Trigger functions run with the search_path they were made with, not the caller's: a
-- role that puts its own schema first cannot slip another `books` or `pg_tables` in.
ALTER FUNCTION journal_entry_balanced() SET search_path = public, pg_temp;
ALTER FUNCTION ledger_append_only() SET search_path = public, pg_temp;
ALTER FUNCTION claims_grow_only() SET search_path = public, pg_temp;
ALTER FUNCTION books_forward_only() SET search_path = public, pg_temp;
ALTER FUNCTION ledger_append_only_check(text, text, text, text, anyelement) SET search_path = public, pg_temp;
