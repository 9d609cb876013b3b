-- Disputes (SPEC.md of 2026-12-07, "Disputes"): a reseller's objection to seconds billed
-- on another provider's GPU, and every move until it ends.
--
-- `disputes` holds what was opened (what a void names, why, the seconds billed with that
-- attribution in the interval then) and never changes; `dispute_moves` holds one row per
-- move, appended: a dispute's state is that of its last move (`open` when it has none).
-- An acceptance's row names the void it made (NULL and 0 when nothing was left to void);
-- the void and the move are written in one transaction (ledger.service.disputes).
--
-- The moves of one dispute are serialized by an advisory lock on its id, taken before its
-- moves are read (ledger/postgres/disputes.py): the application's role cannot lock these
-- rows FOR UPDATE, which needs the UPDATE privilege the append-only policy withholds. The
-- keys and indexes below refuse what a lost lock would let through: two moves with the
-- same number, two answers of the provider, two escalations, two final moves. Which move
-- may follow which, and who makes it, is ledger.domain.disputes'.

CREATE TABLE disputes (
    id          text PRIMARY KEY CHECK (id ~ '^dispute-[0-9]{1,18}$'),
    gpu_uuid    text NOT NULL,
    start_at    bigint NOT NULL,
    end_at      bigint NOT NULL,
    provider    text NOT NULL REFERENCES members,
    reseller    text NOT NULL REFERENCES members,
    tenant      text NOT NULL,
    sku         text NOT NULL REFERENCES skus,
    reason      text NOT NULL CHECK (reason IN ('not_used', 'wrong_tenant', 'wrong_sku', 'outage',
                                                    'duplicate_report', 'other')),
    note        text NOT NULL DEFAULT '' CHECK (char_length(note) <= 2000),
    gpu_seconds int NOT NULL CHECK (gpu_seconds > 0),
    opened_by   text NOT NULL,
    opened_at   bigint NOT NULL,
    CHECK (provider <> reseller AND opened_by = reseller),
    CHECK (start_at < end_at AND end_at - start_at <= 45 * 86400 AND gpu_seconds <= end_at - start_at)
);
CREATE INDEX disputes_by_provider ON disputes (provider);
CREATE INDEX disputes_by_reseller ON disputes (reseller);
CREATE SEQUENCE dispute_numbers;
GRANT USAGE ON SEQUENCE dispute_numbers TO gpuledger_app;

CREATE TABLE dispute_moves (
    dispute_id         text NOT NULL REFERENCES disputes,
    seq                int NOT NULL CHECK (seq >= 1),
    action             text NOT NULL,
    state              text NOT NULL,
    actor              text NOT NULL CHECK (actor = 'operator' OR actor ~ '^[a-z][a-z0-9-]{1,31}$'),
    note               text NOT NULL DEFAULT '' CHECK (char_length(note) <= 2000),
    at                 bigint NOT NULL,
    voided_gpu_seconds int NOT NULL DEFAULT 0 CHECK (voided_gpu_seconds >= 0),
    void_id            text REFERENCES voids,
    PRIMARY KEY (dispute_id, seq),
    CHECK ((action, state) IN (('accept', 'accepted'), ('reject', 'rejected'), ('escalate', 'escalated'),
                               ('withdraw', 'withdrawn'), ('decide_accept', 'accepted'),
                               ('decide_reject', 'rejected'))),
    CHECK ((void_id IS NULL) = (voided_gpu_seconds = 0)),
    CHECK (state = 'accepted' OR void_id IS NULL),
    CHECK (action <> 'reject' OR note <> '')  -- the provider's rejection carries a note
);
CREATE UNIQUE INDEX dispute_moves_one_answer ON dispute_moves (dispute_id) WHERE action IN ('accept', 'reject');
CREATE UNIQUE INDEX dispute_moves_one_escalation ON dispute_moves (dispute_id) WHERE action = 'escalate';
CREATE UNIQUE INDEX dispute_moves_one_end ON dispute_moves (dispute_id)
    WHERE action IN ('accept', 'withdraw', 'decide_accept', 'decide_reject');

SELECT ledger_make_append_only(t) FROM unnest(ARRAY['disputes', 'dispute_moves']::regclass[]) AS t;

-- A void made by an acceptance names its dispute (migration 0012 kept the column).
ALTER TABLE voids ADD CONSTRAINT voids_dispute_fkey FOREIGN KEY (dispute_id) REFERENCES disputes;
CREATE INDEX voids_by_dispute ON voids (dispute_id) WHERE dispute_id IS NOT NULL;
