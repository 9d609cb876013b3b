-- Growth: billed seconds partitioned by month, and hourly rollups kept by the database
-- in the same statement as the seconds they sum.
--
-- Partitions: claims and usage_hours are partitioned by range of hour_start, one
-- partition per calendar month in Asia/Tokyo (the periods of SPEC.md), so a statement
-- reads one month's partition and a closed month's partition stops changing. What a
-- database held before this migration stays in one partition, `*_history`, for every
-- hour before the first monthly partition. Monthly partitions are made ahead by
-- ledger_ensure_partitions() (at every migrate, `gpuledger db migrate`, and by every
-- worker at start and hourly); a row for a month without its partition lands in the
-- `*_default` partition and is kept there (nothing is ever refused for want of one).
--
-- Rollups: usage_hours holds, per UTC hour and (provider, reseller, tenant, sku,
-- service period, booking period, region), the billed seconds of claims. Statement
-- triggers on claims add each statement's change of seconds; a trigger on
-- gpu_registrations moves seconds billed before a GPU was registered from region NULL to
-- its region, so usage_hours always equals claims grouped with the registry joined as it
-- is now. The application's role can read usage_hours but never write it: only the
-- triggers (SECURITY DEFINER, owned by the tables' owner) do.

CREATE FUNCTION ledger_month_start(at bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT extract(epoch FROM date_trunc('month', to_timestamp(at) AT TIME ZONE 'Asia/Tokyo')
                              AT TIME ZONE 'Asia/Tokyo')::bigint
$$;

CREATE FUNCTION ledger_next_month_start(at bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT extract(epoch FROM (date_trunc('month', to_timestamp(at) AT TIME ZONE 'Asia/Tokyo')
                               + interval '1 month') AT TIME ZONE 'Asia/Tokyo')::bigint
$$;

-- claims becomes a partitioned table; the old table is its history partition.
ALTER TABLE claims RENAME TO claims_history;
DROP TRIGGER claims_grow_only ON claims_history;
DROP TRIGGER claims_no_truncate ON claims_history;
ALTER INDEX claims_pkey RENAME TO claims_history_pkey;
ALTER INDEX claims_by_booking_period RENAME TO claims_history_by_booking_period;
ALTER INDEX claims_by_hour RENAME TO claims_history_by_hour;
REVOKE ALL ON claims_history FROM gpuledger_app;

CREATE TABLE claims (
    gpu_uuid        text NOT NULL,
    hour_start      bigint NOT NULL CONSTRAINT claims_hour_start_check CHECK (hour_start % 3600 = 0),
    provider        text NOT NULL,
    reseller        text NOT NULL,
    tenant          text NOT NULL,
    sku             text NOT NULL,
    service_period  text NOT NULL,
    booking_period  text NOT NULL CONSTRAINT claims_check CHECK (booking_period >= service_period),
    seconds         int NOT NULL CONSTRAINT claims_seconds_check CHECK (seconds BETWEEN 1 AND 3600),
    bits            bytea NOT NULL CONSTRAINT claims_bits_check CHECK (length(bits) = 450),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT claims_seconds_are_bits CHECK (seconds = bit_count(bits)),
    PRIMARY KEY (gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period)
) PARTITION BY RANGE (hour_start);
CREATE INDEX claims_by_booking_period ON claims (booking_period, hour_start);
CREATE INDEX claims_by_hour ON claims (hour_start);

-- The hourly rollups. region NULL: the GPU is not (yet) in the registry.
CREATE TABLE usage_hours (
    hour_start      bigint NOT NULL,
    provider        text NOT NULL,
    reseller        text NOT NULL,
    tenant          text NOT NULL,
    sku             text NOT NULL,
    service_period  text NOT NULL,
    booking_period  text NOT NULL,
    region          text,
    seconds         bigint NOT NULL CHECK (seconds >= 0),
    CONSTRAINT usage_hours_key UNIQUE NULLS NOT DISTINCT
        (hour_start, provider, reseller, tenant, sku, service_period, booking_period, region)
) PARTITION BY RANGE (hour_start);
CREATE INDEX usage_hours_by_booking_period ON usage_hours (booking_period, hour_start);
CREATE INDEX usage_hours_by_service_period ON usage_hours (service_period);
GRANT SELECT ON usage_hours TO gpuledger_app;

-- Where monthly partitions begin: every hour before it is in the history partitions.
CREATE TABLE partitioning (
    id           int PRIMARY KEY CHECK (id = 1),
    first_month  bigint NOT NULL
);
GRANT SELECT ON partitioning TO gpuledger_app;

-- How every partition is stored: claims and rollup rows are rewritten many times within
-- their hour (room on each page keeps those updates HOT), then never again; vacuum and
-- analyze them after 2 % of a partition changed instead of the default 20 %.
CREATE FUNCTION ledger_partition_storage() RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, '
           'autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02'
$$;

DO $$
DECLARE
    first_month bigint := ledger_month_start(extract(epoch FROM now())::bigint);
    newest bigint := (SELECT max(hour_start) FROM claims_history);
BEGIN
    IF newest IS NOT NULL AND newest >= first_month THEN
        first_month := ledger_next_month_start(newest);
    END IF;
    INSERT INTO partitioning (id, first_month) VALUES (1, first_month);
    EXECUTE format('ALTER TABLE claims ATTACH PARTITION claims_history FOR VALUES FROM (MINVALUE) TO (%s)', first_month);
    EXECUTE format('CREATE TABLE usage_hours_history PARTITION OF usage_hours FOR VALUES FROM (MINVALUE) TO (%s)', first_month);
    EXECUTE format('CREATE TABLE claims_default PARTITION OF claims DEFAULT WITH (%s)', ledger_partition_storage());
    EXECUTE format('CREATE TABLE usage_hours_default PARTITION OF usage_hours DEFAULT WITH (%s)', ledger_partition_storage());
    EXECUTE format('ALTER TABLE claims_history SET (%s)', ledger_partition_storage());
    EXECUTE format('ALTER TABLE usage_hours_history SET (%s)', ledger_partition_storage());
END
$$;

CREATE TRIGGER claims_grow_only BEFORE INSERT OR UPDATE OR DELETE ON claims
    FOR EACH ROW EXECUTE FUNCTION claims_grow_only();
CREATE TRIGGER claims_no_truncate BEFORE TRUNCATE ON claims
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
GRANT SELECT, INSERT, UPDATE ON claims TO gpuledger_app;

-- Monthly partitions of claims and usage_hours from the current month through
-- `months_ahead` months later; a month whose rows already sit in a default partition is
-- left there. Returns the names of the partitions made.
CREATE FUNCTION ledger_ensure_partitions(months_ahead int DEFAULT 2) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month_start bigint := greatest(ledger_month_start(extract(epoch FROM now())::bigint),
                                   (SELECT first_month FROM partitioning WHERE id = 1));
    month_end bigint;
    parent text;
    name text;
    taken boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(x'67706C70'::int);  -- one maker at a time (workers, migrate)
    FOR i IN 0 .. months_ahead LOOP
        month_end := ledger_next_month_start(month_start);
        FOREACH parent IN ARRAY ARRAY['claims', 'usage_hours'] LOOP
            name := parent || '_' || to_char(to_timestamp(month_start) AT TIME ZONE 'Asia/Tokyo', 'YYYY_MM');
            CONTINUE WHEN to_regclass(name) IS NOT NULL;
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE hour_start >= %s AND hour_start < %s)',
                           parent || '_default', month_start, month_end) INTO taken;
            CONTINUE WHEN taken;
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s) WITH (%s)',
                           name, parent, month_start, month_end, ledger_partition_storage());
            RETURN NEXT name;
        END LOOP;
        month_start := month_end;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION ledger_ensure_partitions(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_ensure_partitions(int) TO gpuledger_app;
SELECT ledger_ensure_partitions(2);

-- Add rows' seconds (sign +1) or take them away (-1), with the registry as it is now.
CREATE FUNCTION ledger_usage_rows_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO usage_hours AS u (hour_start, provider, reseller, tenant, sku, service_period,
                                  booking_period, region, seconds)
    SELECT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period,
           r.region, sum(c.seconds)
    FROM added c
    LEFT JOIN gpu_registrations r ON r.uuid = c.gpu_uuid AND r.provider = c.provider AND r.sku = c.sku
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT ON CONSTRAINT usage_hours_key DO UPDATE SET seconds = u.seconds + excluded.seconds;
    RETURN NULL;
END
$$;

CREATE FUNCTION ledger_usage_rows_grown() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- Keys never change (claims_grow_only): the change is new seconds minus old, per key.
    INSERT INTO usage_hours AS u (hour_start, provider, reseller, tenant, sku, service_period,
                                  booking_period, region, seconds)
    SELECT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period,
           r.region, sum(c.seconds)
    FROM (SELECT gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period,
                 seconds FROM grown
          UNION ALL
          SELECT gpu_uuid, hour_start, provider, reseller, tenant, sku, service_period, booking_period,
                 -seconds FROM before) c
    LEFT JOIN gpu_registrations r ON r.uuid = c.gpu_uuid AND r.provider = c.provider AND r.sku = c.sku
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    HAVING sum(c.seconds) <> 0
    ON CONFLICT ON CONSTRAINT usage_hours_key DO UPDATE SET seconds = u.seconds + excluded.seconds;
    RETURN NULL;
END
$$;

CREATE TRIGGER claims_roll_up_inserts AFTER INSERT ON claims
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ledger_usage_rows_added();
CREATE TRIGGER claims_roll_up_updates AFTER UPDATE ON claims
    REFERENCING OLD TABLE AS before NEW TABLE AS grown FOR EACH STATEMENT EXECUTE FUNCTION ledger_usage_rows_grown();

-- A GPU registered after some of its seconds were billed: those seconds move from region
-- NULL to its region. The GPUs' rows of `gpus` are locked first, in the order intake locks
-- them, so a batch of the same GPUs either commits before (and is moved here) or waits and
-- sees the registration.
CREATE FUNCTION ledger_usage_registered() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO gpus (gpu_uuid) SELECT uuid FROM registered ORDER BY uuid ON CONFLICT (gpu_uuid) DO NOTHING;
    PERFORM 1 FROM gpus WHERE gpu_uuid IN (SELECT uuid FROM registered) ORDER BY gpu_uuid FOR UPDATE;
    WITH moved AS (
        SELECT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period,
               n.region, sum(c.seconds) AS seconds
        FROM registered n JOIN claims c ON c.gpu_uuid = n.uuid AND c.provider = n.provider AND c.sku = n.sku
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
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

CREATE TRIGGER gpu_registrations_roll_up AFTER INSERT ON gpu_registrations
    REFERENCING NEW TABLE AS registered FOR EACH STATEMENT EXECUTE FUNCTION ledger_usage_registered();

-- What was billed before the rollups existed.
INSERT INTO usage_hours (hour_start, provider, reseller, tenant, sku, service_period, booking_period, region, seconds)
SELECT c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period, c.booking_period,
       r.region, sum(c.seconds)
FROM claims c
LEFT JOIN gpu_registrations r ON r.uuid = c.gpu_uuid AND r.provider = c.provider AND r.sku = c.sku
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
