-- SPEC.md of 2026-12-07: who sent each event (check 4, `wrong_provider`), the settings a
-- later catalog file may set once, and the providers a grant pays for.

-- dispute_window_days and payment_terms_days: unset until a file sets them, once; their
-- defaults apply meanwhile. A row is never changed (catalog_settings itself is fixed by
-- the first load, so these cannot live there).
CREATE TABLE catalog_late_settings (
    name      text PRIMARY KEY CHECK (name IN ('dispute_window_days', 'payment_terms_days')),
    value     int NOT NULL CHECK (value >= 0),
    revision  bigint NOT NULL REFERENCES catalog_loads
);
CREATE TRIGGER catalog_late_settings_append_only BEFORE UPDATE OR DELETE ON catalog_late_settings
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER catalog_late_settings_no_truncate BEFORE TRUNCATE ON catalog_late_settings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
GRANT SELECT, INSERT ON catalog_late_settings TO gpuledger_app;

-- Whose GPUs a grant pays for; NULL: any provider's.
ALTER TABLE grants ADD COLUMN providers text[] CHECK (providers IS NULL OR cardinality(providers) > 0);

-- The member an event came from (its own topic, or its API token); NULL: the operator.
-- A replay judges the event again as that member's.
ALTER TABLE dead_letters ADD COLUMN sender text CHECK (sender IS NULL OR sender ~ '^[a-z][a-z0-9-]{1,31}$');

-- Check 4 has its own count; `received` stays the sum of every outcome.
ALTER TABLE intake_tallies ADD COLUMN wrong_provider int NOT NULL DEFAULT 0;
ALTER TABLE intake_tallies DROP COLUMN received;
ALTER TABLE intake_tallies ADD COLUMN received int GENERATED ALWAYS AS (
    accepted + duplicate + malformed + schema + unknown_member + wrong_provider + unknown_sku
    + future + too_late + unregistered_gpu + no_price + no_agreement + conflict) STORED;
