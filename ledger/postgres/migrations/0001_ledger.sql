-- The ledger's first schema: catalog versions, billed GPU-seconds, dead letters,
-- intake tallies, consumer positions, and the books (closed periods).

CREATE TABLE catalog_settings (
    id                      int PRIMARY KEY CHECK (id = 1),
    currency                text NOT NULL CHECK (currency = 'JPY'),
    timezone                text NOT NULL,
    tax_rate_percent        int NOT NULL CHECK (tax_rate_percent BETWEEN 0 AND 100),
    acceptance_horizon_days int NOT NULL CHECK (acceptance_horizon_days >= 0)
);

-- One row per load that added something; workers reload the catalog when the newest
-- revision changes.
CREATE TABLE catalog_loads (
    revision   bigserial PRIMARY KEY,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    source     text NOT NULL,
    sha256     text NOT NULL
);

CREATE TABLE members (
    id                   text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9-]{1,31}$'),
    name                 text NOT NULL,
    invoice_registration text CHECK (invoice_registration ~ '^T[0-9]{13}$'),
    revision             bigint NOT NULL REFERENCES catalog_loads
);

CREATE TABLE skus (
    id          text PRIMARY KEY,
    description text NOT NULL,
    revision    bigint NOT NULL REFERENCES catalog_loads
);

-- Prices in 1/10,000 yen per GPU-hour; instants in Unix seconds.
CREATE TABLE retail_prices (
    reseller                text NOT NULL REFERENCES members,
    sku                     text NOT NULL REFERENCES skus,
    effective_from          bigint NOT NULL,
    yen_per_gpu_hour_units  bigint NOT NULL CHECK (yen_per_gpu_hour_units > 0),
    revision                bigint NOT NULL REFERENCES catalog_loads,
    PRIMARY KEY (reseller, sku, effective_from)
);

CREATE TABLE agreements (
    reseller         text NOT NULL REFERENCES members,
    provider         text NOT NULL REFERENCES members,
    sku              text NOT NULL REFERENCES skus,
    effective_from   bigint NOT NULL,
    wholesale_units  bigint CHECK (wholesale_units > 0),
    share_bps        int CHECK (share_bps BETWEEN 0 AND 10000),
    revision         bigint NOT NULL REFERENCES catalog_loads,
    PRIMARY KEY (reseller, provider, sku, effective_from),
    CHECK ((wholesale_units IS NULL) <> (share_bps IS NULL)),
    CHECK (reseller <> provider)
);

-- The books: closed_through is the last closed period (NULL: none). Workers read it
-- FOR SHARE and a close takes it FOR UPDATE, so closing and booking are serialized.
CREATE TABLE books (
    id              int PRIMARY KEY CHECK (id = 1),
    closed_through  text CHECK (closed_through ~ '^[0-9]{4}-(0[1-9]|1[0-2])$')
);
INSERT INTO books (id, closed_through) VALUES (1, NULL);

-- A closed period prints this document, byte for byte.
CREATE TABLE closed_statements (
    period     text PRIMARY KEY,
    document   bytea NOT NULL,
    closed_at  timestamptz NOT NULL DEFAULT now()
);

-- Every close: which members a period closed with no usage lists in its zero nets.
CREATE TABLE period_closes (
    closed_through  text PRIMARY KEY,
    closed_at       timestamptz NOT NULL DEFAULT now(),
    member_ids      text[] NOT NULL
);

-- One row per GPU ever seen: a batch locks the rows of its GPUs (in sorted order), so
-- two workers never decide the same GPU-seconds at once, however records were keyed.
CREATE TABLE gpus (
    gpu_uuid    text PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now()
);

-- Billed GPU-seconds: bit i of `bits` (little-endian, 450 bytes) is second
-- hour_start + i of the GPU, billed to the attribution, booked in booking_period.
-- Bits are only ever added.
CREATE TABLE claims (
    gpu_uuid        text NOT NULL,
    hour_start      bigint NOT NULL CHECK (hour_start % 3600 = 0),
    provider        text NOT NULL,
    reseller        text NOT NULL,
    tenant          text NOT NULL,
    sku             text NOT NULL,
    service_period  text NOT NULL,
    booking_period  text NOT NULL CHECK (booking_period >= service_period),
    seconds         int NOT NULL CHECK (seconds BETWEEN 1 AND 3600),
    bits            bytea NOT NULL CHECK (length(bits) = 450),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period)
);
CREATE INDEX claims_by_booking_period ON claims (booking_period, hour_start);

CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    reason       text NOT NULL,
    detail       text NOT NULL,
    raw          bytea NOT NULL,
    received_ms  bigint NOT NULL,
    topic        text,
    partition    int,
    "offset"     bigint,
    position     int,
    ingest_id    text NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_by_reason ON dead_letters (reason, id);

-- Outcome counts, one row per (batch, ingest): received = accepted + duplicate + rejected
-- holds for every row by construction, so it holds for every sum.
CREATE TABLE intake_tallies (
    id              bigserial PRIMARY KEY,
    ingest_id       text NOT NULL DEFAULT '',
    topic           text,
    partition       int,
    accepted        int NOT NULL DEFAULT 0,
    duplicate       int NOT NULL DEFAULT 0,
    malformed       int NOT NULL DEFAULT 0,
    schema          int NOT NULL DEFAULT 0,
    unknown_member  int NOT NULL DEFAULT 0,
    unknown_sku     int NOT NULL DEFAULT 0,
    future          int NOT NULL DEFAULT 0,
    too_late        int NOT NULL DEFAULT 0,
    no_price        int NOT NULL DEFAULT 0,
    no_agreement    int NOT NULL DEFAULT 0,
    conflict        int NOT NULL DEFAULT 0,
    received        int GENERATED ALWAYS AS (
        accepted + duplicate + malformed + schema + unknown_member + unknown_sku + future
        + too_late + no_price + no_agreement + conflict) STORED,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intake_tallies_by_ingest ON intake_tallies (ingest_id);

-- The next Kafka offset to apply per partition, written in the same transaction as
-- what the records decided: a redelivered record is recognised and skipped.
CREATE TABLE consumer_positions (
    topic        text NOT NULL,
    partition    int NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
