-- TimescaleDB companion of 002_sqal_frame_bytea.sql: the base file switched sqal_samples' compression off
-- to convert the ToF columns (TimescaleDB refuses ALTER COLUMN TYPE on a compression-enabled hypertable);
-- switch it back on with 001's settings and policy. Not run on this machine (no TimescaleDB here).

ALTER TABLE sqal_samples SET (timescaledb.compress, timescaledb.compress_segmentby = 'dev', timescaledb.compress_orderby = 'ts DESC');
SELECT add_compression_policy('sqal_samples', INTERVAL '30 days', if_not_exists => true);
