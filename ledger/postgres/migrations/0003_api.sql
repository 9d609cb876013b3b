-- The usage API: bearer tokens (only a salted hash is stored), their revocations, the
-- key of tenant pseudonyms, and the provider of each dead letter (for scoping).

CREATE TABLE api_tokens (
    id          text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    member      text REFERENCES members,
    role        text NOT NULL CHECK (role IN ('member', 'auditor', 'admin')),
    salt        bytea NOT NULL CHECK (length(salt) = 16),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'member') = (member IS NOT NULL))
);

CREATE TABLE api_token_revocations (
    token_id    text PRIMARY KEY REFERENCES api_tokens,
    revoked_at  timestamptz NOT NULL DEFAULT now()
);

-- One secret key per ledger: pseudonym = HMAC(key, viewer | reseller | tenant).
CREATE TABLE api_secrets (
    id            int PRIMARY KEY CHECK (id = 1),
    pseudonym_key bytea NOT NULL CHECK (length(pseudonym_key) = 32)
);

ALTER TABLE dead_letters ADD COLUMN provider text;
ALTER TABLE dead_letters ADD COLUMN reseller text;

CREATE TABLE dead_letter_replays (
    dead_letter_id  bigint PRIMARY KEY REFERENCES dead_letters,
    outcome         text NOT NULL,
    replayed_at     timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['api_tokens', 'api_token_revocations', 'api_secrets', 'dead_letter_replays']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION ledger_append_only()', name || '_append_only', name);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION ledger_append_only()', name || '_no_truncate', name);
        EXECUTE format('GRANT SELECT, INSERT ON %I TO gpuledger_app', name);
    END LOOP;
END
$$;
