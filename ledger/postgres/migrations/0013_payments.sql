-- Payments of the netting's transfers (SPEC.md "Payments"), kept append-only.
--
-- 1. statement_transfers: the transfers each closed statement owes, read from its stored
--    bytes by the database when the statement is stored (and here for those stored
--    before), so payments can name them, and reading them does not parse statements. Only
--    the database writes it.
-- 2. payments: what a payer recorded, never changed; payment_decisions: the payee's one
--    decision of a payment (confirmed or rejected), never changed. A payment is
--    `recorded` until its decision row exists. A confirmation names the `payment` journal
--    entry appended in its transaction, so the hash chain covers every confirmed yen.
--    Ids number payments in recording order without gaps: pay-1, pay-2, ...
-- 3. The database refuses a payment that would make its transfer's recorded and confirmed
--    payments exceed it, under a lock per transfer (`ledger_lock_transfer`, which the
--    application takes first too): two payments recorded at once cannot together
--    exceed it.
-- 4. Journal kinds: `transfer_owed` (a close since now posts each transfer as owed:
--    payable and receivable), `payment` (a confirmed payment clears them against cash),
--    `transfer_restated` (a transfer posted as paid at a close before this migration,
--    reopened as owed at its first confirmed payment). ledger/domain/payment_journal.py.

CREATE TABLE statement_transfers (
    period      text NOT NULL REFERENCES closed_statements (period),
    idx         int NOT NULL CHECK (idx >= 0),
    payer       text NOT NULL,
    payee       text NOT NULL,
    amount_yen  bigint NOT NULL CHECK (amount_yen > 0),
    PRIMARY KEY (period, idx),
    -- the netting pays each pair at most once a period (one of the two nets is then 0)
    UNIQUE (period, payer, payee),
    CHECK (payer <> payee)
);

-- (json, not jsonb: only `transfers` is read, and a 27 MB statement of 100,000 lines takes
-- about 0.3 s so, twice that as jsonb.)
CREATE FUNCTION ledger_statement_transfers() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO statement_transfers (period, idx, payer, payee, amount_yen)
    SELECT NEW.period, t.n - 1, t.row ->> 'from', t.row ->> 'to', (t.row ->> 'amount_yen')::bigint
    FROM json_array_elements(convert_from(NEW.document, 'UTF8')::json -> 'transfers') WITH ORDINALITY AS t(row, n);
    RETURN NULL;
END
$$;
CREATE TRIGGER closed_statements_transfers AFTER INSERT ON closed_statements
    FOR EACH ROW EXECUTE FUNCTION ledger_statement_transfers();

INSERT INTO statement_transfers (period, idx, payer, payee, amount_yen)
SELECT s.period, t.n - 1, t.row ->> 'from', t.row ->> 'to', (t.row ->> 'amount_yen')::bigint
FROM closed_statements s,
     json_array_elements(convert_from(s.document, 'UTF8')::json -> 'transfers') WITH ORDINALITY AS t(row, n);

-- One transfer's payments, one transaction at a time (an advisory lock: the application's
-- role may not lock rows of a table it cannot update).
CREATE FUNCTION ledger_lock_transfer(period text, payer text, payee text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(x'70617931'::int, hashtext(period || '/' || payer || '/' || payee))
$$;

CREATE TABLE payments (
    id           text PRIMARY KEY CHECK (id ~ '^pay-[1-9][0-9]{0,17}$'),  -- set by payments_2_numbered
    period       text NOT NULL,
    payer        text NOT NULL,
    payee        text NOT NULL,
    amount_yen   bigint NOT NULL CHECK (amount_yen > 0),
    paid_on      date NOT NULL,
    reference    text NOT NULL CHECK (char_length(reference) BETWEEN 1 AND 200),
    recorded_by  text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (period, payer, payee) REFERENCES statement_transfers (period, payer, payee)
);
CREATE INDEX payments_by_transfer ON payments (period, payer, payee);
CREATE UNIQUE INDEX payments_by_number ON payments ((substr(id, 5)::bigint));

-- Ids number payments in recording order without gaps (pay-1, pay-2, ...: a refused
-- payment takes no number), one recording at a time.
CREATE FUNCTION ledger_payment_number() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(x'7061796e'::int, 0);
    NEW.id := 'pay-' || (SELECT coalesce(max(substr(id, 5)::bigint), 0) + 1 FROM payments);
    RETURN NEW;
END
$$;

CREATE TABLE payment_decisions (
    payment_id   text PRIMARY KEY REFERENCES payments (id),
    state        text NOT NULL CHECK (state IN ('confirmed', 'rejected')),
    note         text NOT NULL DEFAULT '' CHECK (char_length(note) <= 2000),
    decided_by   text NOT NULL,
    decided_at   timestamptz NOT NULL DEFAULT now(),
    journal_seq  bigint UNIQUE REFERENCES journal_entries (seq),
    CHECK (state = 'confirmed' OR btrim(note) <> ''),
    CHECK ((state = 'confirmed') = (journal_seq IS NOT NULL))
);

-- Recorded and confirmed payments never exceed their transfer.
CREATE FUNCTION ledger_payment_within_transfer() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    owed bigint;
    held bigint;
BEGIN
    PERFORM ledger_lock_transfer(NEW.period, NEW.payer, NEW.payee);
    SELECT amount_yen INTO owed FROM statement_transfers
    WHERE period = NEW.period AND payer = NEW.payer AND payee = NEW.payee;
    SELECT coalesce(sum(p.amount_yen), 0) INTO held FROM payments p
    WHERE p.period = NEW.period AND p.payer = NEW.payer AND p.payee = NEW.payee
      AND NOT EXISTS (SELECT 1 FROM payment_decisions d WHERE d.payment_id = p.id AND d.state = 'rejected');
    IF owed IS NOT NULL AND held + NEW.amount_yen > owed THEN
        RAISE EXCEPTION 'payments: % yen more to % from % for % would exceed the transfer (% yen, % held)',
            NEW.amount_yen, NEW.payee, NEW.payer, NEW.period, owed, held USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payments_1_within_transfer BEFORE INSERT ON payments
    FOR EACH ROW EXECUTE FUNCTION ledger_payment_within_transfer();
-- After payments_1_within_transfer (triggers fire in name order): a refused payment takes no number.
CREATE TRIGGER payments_2_numbered BEFORE INSERT ON payments
    FOR EACH ROW EXECUTE FUNCTION ledger_payment_number();

-- A confirmation names the `payment` entry of its own payment.
CREATE FUNCTION ledger_decision_posted() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF NEW.journal_seq IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM journal_entries e
        WHERE e.seq = NEW.journal_seq AND e.kind = 'payment' AND e.reference ->> 'payment' = NEW.payment_id
    ) THEN
        RAISE EXCEPTION 'payment_decisions: journal entry % is not the entry of payment %', NEW.journal_seq, NEW.payment_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payment_decisions_posted BEFORE INSERT ON payment_decisions
    FOR EACH ROW EXECUTE FUNCTION ledger_decision_posted();

SELECT ledger_make_append_only(t) FROM unnest(ARRAY['payments', 'payment_decisions']::regclass[]) AS t;
SELECT ledger_make_append_only('statement_transfers', app_inserts => false);

-- The journal's kinds: those already allowed (read from the constraint, so that a
-- migration adding other kinds beside this one keeps them) and the three above, written
-- as 0007 wrote them (`kind IN ('a', ...)`), so that the next migration can read them so.
DO $$
DECLARE
    kinds text;
BEGIN
    SELECT string_agg(quote_literal(k), ', ' ORDER BY k) INTO kinds FROM (
        SELECT m[1] AS k
        FROM pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') AS m
        WHERE c.conrelid = 'journal_entries'::regclass AND c.conname = 'journal_entries_kind_check'
        UNION SELECT unnest(ARRAY['transfer_owed', 'payment', 'transfer_restated'])
    ) AS allowed;
    ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
    EXECUTE format('ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check CHECK (kind IN (%s))', kinds);
END
$$;
