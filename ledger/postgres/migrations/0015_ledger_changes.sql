-- What changes the books besides metering a batch: a void, a close, a dead letter's
-- replay. Each bumps `ledger_changes.changes` (statement-level triggers, SECURITY DEFINER:
-- the application's role reads the counter and never writes it), and the ledger's version
-- (catalog revision, batches metered + changes) moves with it, so an answer kept for one
-- version (the usage API's statements) is never served after the books it was computed
-- from changed.

CREATE TABLE ledger_changes (
    id       int PRIMARY KEY CHECK (id = 1),
    changes  bigint NOT NULL CHECK (changes >= 0)
);
INSERT INTO ledger_changes VALUES (1, 0);
GRANT SELECT ON ledger_changes TO gpuledger_app;

-- The counter only grows, by whoever writes it, and is never deleted or truncated.
CREATE FUNCTION ledger_changes_grow_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.changes <= OLD.changes THEN
        RAISE EXCEPTION 'ledger_changes only grows' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ledger_changes_grow_only BEFORE UPDATE OR DELETE ON ledger_changes
    FOR EACH ROW EXECUTE FUNCTION ledger_changes_grow_only();
SELECT ledger_refuse_truncate('ledger_changes');

CREATE FUNCTION ledger_count_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE ledger_changes SET changes = changes + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER voids_count_change AFTER INSERT ON voids
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_count_change();
CREATE TRIGGER period_closes_count_change AFTER INSERT ON period_closes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_count_change();
CREATE TRIGGER dead_letter_replays_count_change AFTER INSERT ON dead_letter_replays
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_count_change();
