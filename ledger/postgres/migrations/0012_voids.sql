-- Voids (SPEC.md of 2026-12-07, "Corrections"): GPU-seconds taken back from one
-- attribution, kept apart from the claims.
--
-- Claims keep every bit they were billed with (they say what was billed, and when); a
-- void's bits are subtracted from them. A second is billed now to the attribution whose
-- claim has it and whose voids do not. `voided_seconds` holds, per void, the bits it
-- took from each claim (one GPU-hour, one attribution, one service and booking period),
-- and where they went: `returned_in` NULL when the claim's booking period was open at
-- the void (the seconds simply leave its lines), else the first open booking period,
-- whose statement returns them.
--
-- The rollups (usage_hours) are what is billed now: a trigger takes a void's seconds out
-- of them in the statement that writes the void, so usage figures and the capacity
-- report stop counting them at once. A GPU registered later moves only its seconds
-- billed now to its region.

CREATE TABLE voids (
    id             text PRIMARY KEY CHECK (id ~ '^void-[0-9]{1,18}$'),
    gpu_uuid       text NOT NULL,
    start_at       bigint NOT NULL,
    end_at         bigint NOT NULL,
    provider       text NOT NULL REFERENCES members,
    reseller       text NOT NULL REFERENCES members,
    tenant         text NOT NULL,
    sku            text NOT NULL REFERENCES skus,
    reason         text NOT NULL CHECK (reason IN ('not_used', 'wrong_tenant', 'wrong_sku', 'outage',
                                                    'duplicate_report', 'other')),
    dispute_id     text,
    actor          text NOT NULL CHECK (actor = 'operator' OR actor ~ '^[a-z][a-z0-9-]{1,31}$'),
    gpu_seconds    int NOT NULL CHECK (gpu_seconds > 0),
    closed_through text,  -- the books as the void found them
    made_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (start_at < end_at AND end_at - start_at <= 45 * 86400)
);
CREATE INDEX voids_by_gpu ON voids (gpu_uuid, start_at);
CREATE SEQUENCE void_numbers;
GRANT USAGE ON SEQUENCE void_numbers TO gpuledger_app;

CREATE TABLE voided_seconds (
    void_id         text NOT NULL REFERENCES voids,
    gpu_uuid        text NOT NULL,
    hour_start      bigint NOT NULL CHECK (hour_start % 3600 = 0),
    provider        text NOT NULL,
    reseller        text NOT NULL,
    tenant          text NOT NULL,
    sku             text NOT NULL,
    service_period  text NOT NULL,
    booking_period  text NOT NULL,
    bits            bytea NOT NULL CHECK (length(bits) = 450),
    seconds         int NOT NULL CHECK (seconds BETWEEN 1 AND 3600 AND seconds = bit_count(bits)),
    returned_in     text CHECK (returned_in IS NULL OR returned_in > booking_period),
    PRIMARY KEY (void_id, gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period)
);
CREATE INDEX voided_seconds_by_hour ON voided_seconds (gpu_uuid, hour_start);
CREATE INDEX voided_seconds_by_booking ON voided_seconds (booking_period, hour_start);
CREATE INDEX voided_seconds_by_return ON voided_seconds (returned_in) WHERE returned_in IS NOT NULL;

SELECT ledger_make_append_only(t) FROM unnest(ARRAY['voids', 'voided_seconds']::regclass[]) AS t;

-- A void's seconds leave the rollups in the statement that writes it.
CREATE FUNCTION ledger_usage_rows_voided() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE usage_hours u SET seconds = u.seconds - v.seconds
    FROM (
        SELECT v.hour_start, v.provider, v.reseller, v.tenant, v.sku, v.service_period, v.booking_period,
               r.region, sum(v.seconds) AS seconds
        FROM voided v
        LEFT JOIN gpu_registrations r ON r.uuid = v.gpu_uuid AND r.provider = v.provider AND r.sku = v.sku
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    ) v
    WHERE u.hour_start = v.hour_start AND u.provider = v.provider AND u.reseller = v.reseller
      AND u.tenant = v.tenant AND u.sku = v.sku AND u.service_period = v.service_period
      AND u.booking_period = v.booking_period AND u.region IS NOT DISTINCT FROM v.region;
    RETURN NULL;
END
$$;

CREATE TRIGGER voided_seconds_roll_up AFTER INSERT ON voided_seconds
    REFERENCING NEW TABLE AS voided FOR EACH STATEMENT EXECUTE FUNCTION ledger_usage_rows_voided();

-- A GPU registered after some of its seconds were billed: its seconds billed now (claims
-- less voids) move from region NULL to its region.
CREATE OR REPLACE FUNCTION ledger_usage_registered() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO gpus (gpu_uuid) SELECT uuid FROM registered ORDER BY uuid ON CONFLICT (gpu_uuid) DO NOTHING;
    PERFORM 1 FROM gpus WHERE gpu_uuid IN (SELECT uuid FROM registered) ORDER BY gpu_uuid FOR UPDATE;
    WITH billed AS (
        SELECT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period,
               n.region, c.seconds - coalesce((
                   SELECT sum(v.seconds) FROM voided_seconds v
                   WHERE v.gpu_uuid = c.gpu_uuid AND v.hour_start = c.hour_start AND v.provider = c.provider
                     AND v.reseller = c.reseller AND v.tenant = c.tenant AND v.sku = c.sku
                     AND v.service_period = c.service_period AND v.booking_period = c.booking_period), 0) AS seconds
        FROM registered n JOIN claims c ON c.gpu_uuid = n.uuid AND c.provider = n.provider AND c.sku = n.sku
    ), moved AS (
        SELECT hour_start, provider, reseller, tenant, sku, service_period, booking_period, region,
               sum(seconds) AS seconds
        FROM billed GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING sum(seconds) > 0
    ), taken AS (
        UPDATE usage_hours u SET seconds = u.seconds - m.seconds
        FROM moved m
        WHERE u.region IS NULL AND u.hour_start = m.hour_start AND u.provider = m.provider
          AND u.reseller = m.reseller AND u.tenant = m.tenant AND u.sku = m.sku
          AND u.service_period = m.service_period AND u.booking_period = m.booking_period
    )
    INSERT INTO usage_hours AS u (hour_start, provider, reseller, tenant, sku, service_period,
                                  booking_period, region, seconds)
    SELECT * FROM moved
    ON CONFLICT ON CONSTRAINT usage_hours_key DO UPDATE SET seconds = u.seconds + excluded.seconds;
    -- Rollup rows left with no seconds go (readers also skip them).
    DELETE FROM usage_hours u
    USING (SELECT DISTINCT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period,
                           c.booking_period
           FROM registered n JOIN claims c ON c.gpu_uuid = n.uuid AND c.provider = n.provider AND c.sku = n.sku) m
    WHERE u.seconds = 0 AND u.region IS NULL AND u.hour_start = m.hour_start AND u.provider = m.provider
      AND u.reseller = m.reseller AND u.tenant = m.tenant AND u.sku = m.sku
      AND u.service_period = m.service_period AND u.booking_period = m.booking_period;
    RETURN NULL;
END
$$;
