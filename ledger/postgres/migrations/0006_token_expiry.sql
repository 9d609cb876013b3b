-- API tokens expire, and the ledger remembers when each was last used.

ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
-- Tokens made before expiry existed get the default lifetime from their creation.
UPDATE api_tokens SET expires_at = created_at + interval '90 days' WHERE expires_at IS NULL;
ALTER TABLE api_tokens ALTER COLUMN expires_at SET NOT NULL;

-- Operational, not ledger: rewritten at most about once a minute per token.
CREATE TABLE api_token_uses (
    token_id      text PRIMARY KEY REFERENCES api_tokens,
    last_used_at  timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON api_token_uses TO gpuledger_app;
