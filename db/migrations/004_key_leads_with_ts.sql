-- The two high-volume telemetry tables lose a btree (plain PostgreSQL).
--
-- fridge_readings and sqal_samples each had a primary key on the idempotency key (dev, boot, seq) and a
-- second btree on (dev, ts DESC) for reading one device's rows by time. Both take every row at a random
-- place (10,000 devices interleaved), so each was a WAL record and a dirtied leaf page per row. One btree on
-- (dev, ts, boot, seq) does both jobs: it is unique, so ON CONFLICT DO NOTHING still finds a redelivered
-- message (which carries the same device ts: it is the same bytes), and it serves "device X between two
-- times, newest first" by a backward scan. Measured end to end at 10,000 readings/s (docs/benchmarks.md,
-- fifteenth session): WAL -18 %, WAL records -30 %, PostgreSQL CPU ~22 % → ~16 % of a core.
--
-- This is the key the TimescaleDB companion of 001 already uses (every unique index of a hypertable must
-- hold the time column), in another order. Hypertables are left as they are: that path is not measured
-- here (no TimescaleDB on this machine). docs/decisions.md, "Telemetry keys lead with (dev, ts)".
--
-- On an existing database the new key is built while the table is locked: seconds per million rows.
DO $$
DECLARE
  t text;
  hyper boolean;
BEGIN
  FOREACH t IN ARRAY ARRAY['fridge_readings', 'sqal_samples'] LOOP
    hyper := false;
    IF to_regclass('timescaledb_information.hypertables') IS NOT NULL THEN
      EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = $1)'
        INTO hyper USING t;
    END IF;
    CONTINUE WHEN hyper;
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t, t || '_pkey');
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (dev, ts, boot, seq)', t);
    EXECUTE format('DROP INDEX %I', t || '_dev_ts_idx');
  END LOOP;
END
$$;
