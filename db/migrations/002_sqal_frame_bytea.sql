-- SQAL ToF frames stored as the wire's bytes (docs/decisions.md, "ToF frames as bytea").
--
-- The four 8x8 ToF matrices arrive as RFC 8746 typed arrays: dist and amp as 64 little-endian uint16
-- (128 bytes), status and refl as 64 uint8 (64 bytes). Stored as integer[]/smallint[] they cost the server
-- most of its COPY time (parsing or checking 256 array elements a row): measured here, 100,000 rows COPY
-- took 5.2-6.3 s as int arrays (text) and 1.5-1.6 s as bytea (binary). So the columns now hold exactly those
-- bytes, and SQL reads them back as arrays with esp_u16le / esp_u8 (or the sqal_samples_arrays view).
--
-- Append-only time columns: the plain-PostgreSQL (ts DESC) btrees on sqal_samples and fridge_readings
-- become BRIN indexes (rows arrive in ts order; BRIN costs next to nothing per insert). Every query that
-- reads one device's rows by time uses the (dev, ts DESC) btree, which stays.

-- Little-endian uint16 bytes → integer[] (one element per 2 bytes; a trailing odd byte is ignored).
CREATE FUNCTION esp_u16le(b bytea) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT COALESCE(array_agg(get_byte(b, 2 * i) | (get_byte(b, 2 * i + 1) << 8) ORDER BY i), '{}')
  FROM generate_series(0, length(b) / 2 - 1) AS i
$$;

-- uint8 bytes → integer[].
CREATE FUNCTION esp_u8(b bytea) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT COALESCE(array_agg(get_byte(b, i) ORDER BY i), '{}')
  FROM generate_series(0, length(b) - 1) AS i
$$;

-- The inverses, for converting stored rows (values are taken modulo 2^16 / 2^8, as the wire types are).
CREATE FUNCTION esp_u16le_bytes(a integer[]) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT COALESCE(string_agg(set_byte(set_byte('\x0000'::bytea, 0, x & 255), 1, (x >> 8) & 255), ''::bytea ORDER BY o), ''::bytea)
  FROM unnest(a) WITH ORDINALITY AS t(x, o)
$$;

CREATE FUNCTION esp_u8_bytes(a integer[]) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT COALESCE(string_agg(set_byte('\x00'::bytea, 0, x & 255), ''::bytea ORDER BY o), ''::bytea)
  FROM unnest(a) WITH ORDINALITY AS t(x, o)
$$;

-- TimescaleDB refuses ALTER COLUMN TYPE on a hypertable with compression enabled (001's companion enables
-- it): decompress, switch compression off for the conversion; 002_sqal_frame_bytea.timescale.sql switches
-- it back on. Dynamic SQL, so plain PostgreSQL and PGlite (no timescaledb) never resolve these names.
DO $$
DECLARE
  compressed boolean := false;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    EXECUTE $q$SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                              WHERE hypertable_name = 'sqal_samples' AND compression_enabled)$q$ INTO compressed;
  END IF;
  IF compressed THEN
    EXECUTE $q$SELECT remove_compression_policy('sqal_samples', if_exists => true)$q$;
    EXECUTE $q$SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('sqal_samples') AS c$q$;
    EXECUTE $q$ALTER TABLE sqal_samples SET (timescaledb.compress = false)$q$;
  END IF;
END
$$;

ALTER TABLE sqal_samples
  ALTER COLUMN tof_dist TYPE bytea USING esp_u16le_bytes(tof_dist),
  ALTER COLUMN tof_status TYPE bytea USING esp_u8_bytes(tof_status::integer[]),
  ALTER COLUMN tof_refl TYPE bytea USING esp_u8_bytes(tof_refl::integer[]),
  ALTER COLUMN tof_amp TYPE bytea USING esp_u16le_bytes(tof_amp);

COMMENT ON COLUMN sqal_samples.tof_dist IS '64 x uint16 little-endian, mm, row-major 8x8; esp_u16le(tof_dist) for integer[]';
COMMENT ON COLUMN sqal_samples.tof_status IS '64 x uint8, target status (5 = valid); esp_u8(tof_status) for integer[]';
COMMENT ON COLUMN sqal_samples.tof_refl IS '64 x uint8, reflectance %; esp_u8(tof_refl) for integer[]';
COMMENT ON COLUMN sqal_samples.tof_amp IS '64 x uint16 little-endian, signal amplitude 0-4095; esp_u16le(tof_amp) for integer[]';

-- The same rows with the ToF frames as integer arrays, for people and for the telemetry API.
CREATE VIEW sqal_samples_arrays AS
SELECT dev, boot, seq, ts, received_at, sample, lot, idx,
       esp_u16le(tof_dist) AS tof_dist, esp_u8(tof_status) AS tof_status, esp_u8(tof_refl) AS tof_refl,
       esp_u16le(tof_amp) AS tof_amp, tof_amb, tof_h, spec_counts, spec_gain, spec_atime, spec_astep, temp,
       sim_tier, sim_defects
FROM sqal_samples;

DROP INDEX IF EXISTS sqal_samples_ts_idx;
CREATE INDEX sqal_samples_ts_brin ON sqal_samples USING brin (ts);
DROP INDEX IF EXISTS fridge_readings_ts_idx;
CREATE INDEX fridge_readings_ts_brin ON fridge_readings USING brin (ts);
