-- Dead letters keep bounded bytes: an event's bytes whole only within SPEC.md's 1 MiB
-- (what a replay can judge), else their first 4 KiB; always their full size and SHA-256.
-- A replay rejected again keeps no copy: it refers to the dead letter that holds the bytes.
-- Rows written before this migration keep what they stored (whole); their size and hash
-- are NULL and read as length(raw) and sha256(raw).

ALTER TABLE dead_letters ADD COLUMN raw_bytes bigint CHECK (raw_bytes >= 0);
ALTER TABLE dead_letters ADD COLUMN raw_sha256 bytea CHECK (length(raw_sha256) = 32);
ALTER TABLE dead_letters ADD COLUMN raw_of bigint REFERENCES dead_letters;

-- New rows only (NOT VALID: older rows may hold more and are never rewritten).
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_bounded CHECK (
    raw_bytes IS NOT NULL AND raw_sha256 IS NOT NULL
    AND length(raw) <= 1048576 AND length(raw) <= raw_bytes
    AND (raw_of IS NULL OR length(raw) = 0)
) NOT VALID;

-- raw_of names the row that holds the bytes, never one that refers on: one join reads them.
CREATE FUNCTION dead_letters_raw_of_holds_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM dead_letters WHERE id = NEW.raw_of AND raw_of IS NOT NULL) THEN
        RAISE EXCEPTION 'dead_letters: raw_of % refers to another dead letter''s bytes itself', NEW.raw_of
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER dead_letters_raw_of_holds_bytes BEFORE INSERT ON dead_letters
    FOR EACH ROW WHEN (NEW.raw_of IS NOT NULL) EXECUTE FUNCTION dead_letters_raw_of_holds_bytes();
