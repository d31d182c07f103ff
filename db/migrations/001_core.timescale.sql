-- migrate:no-transaction
-- TimescaleDB companion of 001_core.sql, applied only when the server has the extension
-- (pg_available_extensions). Hypertables partitioned on the device time `ts`; TimescaleDB requires every
-- unique index to include the partitioning column, so the idempotency keys become (dev, boot, seq, ts):
-- a redelivered message carries the same ts, so ON CONFLICT DO NOTHING still stores it once.
-- Runs outside a transaction because continuous aggregates cannot be created inside one; every
-- statement is written to be re-runnable.

CREATE EXTENSION IF NOT EXISTS timescaledb;

ALTER TABLE fridge_readings DROP CONSTRAINT IF EXISTS fridge_readings_pkey;
ALTER TABLE fridge_readings ADD PRIMARY KEY (dev, boot, seq, ts);
SELECT create_hypertable('fridge_readings', 'ts', chunk_time_interval => INTERVAL '1 day', migrate_data => true, if_not_exists => true);

ALTER TABLE sqal_samples DROP CONSTRAINT IF EXISTS sqal_samples_pkey;
ALTER TABLE sqal_samples ADD PRIMARY KEY (dev, boot, seq, ts);
SELECT create_hypertable('sqal_samples', 'ts', chunk_time_interval => INTERVAL '1 day', migrate_data => true, if_not_exists => true);

ALTER TABLE device_status DROP CONSTRAINT IF EXISTS device_status_pkey;
ALTER TABLE device_status ADD PRIMARY KEY (dev, boot, seq, ts);
SELECT create_hypertable('device_status', 'ts', chunk_time_interval => INTERVAL '7 days', migrate_data => true, if_not_exists => true);

ALTER TABLE events DROP CONSTRAINT IF EXISTS events_pkey;
ALTER TABLE events ADD PRIMARY KEY (dev, boot, seq, ts);
SELECT create_hypertable('events', 'ts', chunk_time_interval => INTERVAL '7 days', migrate_data => true, if_not_exists => true);

ALTER TABLE fridge_readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'dev', timescaledb.compress_orderby = 'ts DESC');
SELECT add_compression_policy('fridge_readings', INTERVAL '7 days', if_not_exists => true);
SELECT add_retention_policy('fridge_readings', INTERVAL '400 days', if_not_exists => true);

ALTER TABLE sqal_samples SET (timescaledb.compress, timescaledb.compress_segmentby = 'dev', timescaledb.compress_orderby = 'ts DESC');
SELECT add_compression_policy('sqal_samples', INTERVAL '30 days', if_not_exists => true);

ALTER TABLE device_status SET (timescaledb.compress, timescaledb.compress_segmentby = 'dev', timescaledb.compress_orderby = 'ts DESC');
SELECT add_compression_policy('device_status', INTERVAL '7 days', if_not_exists => true);
SELECT add_retention_policy('device_status', INTERVAL '90 days', if_not_exists => true);

-- One-minute buckets of fridge readings for dashboards; the telemetry API's bucketed query computes the
-- same figures from the raw table on plain PostgreSQL.
CREATE MATERIALIZED VIEW IF NOT EXISTS fridge_readings_1m
WITH (timescaledb.continuous) AS
SELECT dev,
       time_bucket(INTERVAL '1 minute', ts) AS bucket,
       count(*) AS n,
       avg(t) AS t_avg, min(t) AS t_min, max(t) AS t_max,
       avg(p_lo) AS p_lo_avg, avg(p_hi) AS p_hi_avg,
       avg(i_comp) AS i_comp_avg, avg(v_sup) AS v_sup_avg,
       avg(vib) AS vib_avg, avg(rh) AS rh_avg, avg(flow) AS flow_avg
FROM fridge_readings
GROUP BY dev, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('fridge_readings_1m',
  start_offset => INTERVAL '1 hour', end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute',
  if_not_exists => true);
