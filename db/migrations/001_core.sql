-- Core tables written by ingest (DESIGN §5). Plain PostgreSQL (and PGlite); 001_core.timescale.sql turns
-- the time-series tables into hypertables when TimescaleDB is available.
--
-- Every device channel table carries the envelope: dev, boot, seq (the idempotency key, unique per
-- channel), ts (device clock) and received_at (ingest's clock). Hot-path columns are scalars and
-- arrays, not jsonb: COPY into jsonb is ~3x slower.

CREATE TABLE devices (
  id            text PRIMARY KEY,
  kind          text NOT NULL,
  site          text NOT NULL,
  status        text NOT NULL DEFAULT 'unknown',   -- online | offline | error | unknown
  status_reason text,
  status_at     timestamptz,                       -- ingest receive time of the status that set it
  boot          bigint,                            -- boot counter of the latest status or meta
  fw            text,
  hw            text,
  mac           text,
  emulated      boolean,
  meta          jsonb,                             -- the latest meta message (sensors, cfg, …)
  meta_boot     bigint,
  meta_seq      bigint,
  first_seen    timestamptz NOT NULL,
  last_seen     timestamptz NOT NULL
);
CREATE INDEX devices_kind_site_idx ON devices (kind, site);
CREATE INDEX devices_status_idx ON devices (status);

-- Status history: birth, heartbeats, will / clean shutdown.
CREATE TABLE device_status (
  dev         text NOT NULL,
  boot        bigint NOT NULL,
  seq         bigint NOT NULL,
  ts          timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  state       text NOT NULL,
  reason      text,
  uptime      bigint,
  heap        bigint,
  rssi        smallint,
  cnt_sent    bigint,
  cnt_buffered bigint,
  cnt_dropped bigint,
  cnt_reconnects bigint,
  cnt_i2c_err bigint,
  PRIMARY KEY (dev, boot, seq)
);
CREATE INDEX device_status_dev_ts_idx ON device_status (dev, ts DESC);

CREATE TABLE fridge_readings (
  dev         text NOT NULL,
  boot        bigint NOT NULL,
  seq         bigint NOT NULL,
  ts          timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  t           real NOT NULL,
  t_evap      real,
  p_lo        real NOT NULL,
  p_hi        real NOT NULL,
  i_comp      real NOT NULL,
  v_sup       real NOT NULL,
  vib         real NOT NULL,
  rh          real NOT NULL,
  flow        real NOT NULL,
  door        boolean NOT NULL,
  comp        boolean NOT NULL,
  defrost     boolean NOT NULL,
  sim_fault   text,            -- SIMULATION GROUND TRUTH (emulated devices only)
  sim         boolean NOT NULL DEFAULT false, -- true when the message carried simulation ground truth
  PRIMARY KEY (dev, boot, seq)
);
CREATE INDEX fridge_readings_dev_ts_idx ON fridge_readings (dev, ts DESC);
CREATE INDEX fridge_readings_ts_idx ON fridge_readings (ts DESC);

-- SQAL samples: VL53L8CH 8x8 frame (row-major arrays of 64) + AS7341 counts in AS7341_CHANNELS order
-- (f1..f8, clear, nir). Grades and features are written by sqal into its own tables (050-099).
CREATE TABLE sqal_samples (
  dev         text NOT NULL,
  boot        bigint NOT NULL,
  seq         bigint NOT NULL,
  ts          timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  sample      text NOT NULL,
  lot         text,
  idx         integer,
  tof_dist    integer[] NOT NULL,   -- mm, uint16
  tof_status  smallint[] NOT NULL,  -- 5 = valid
  tof_refl    smallint[] NOT NULL,  -- %
  tof_amp     integer[] NOT NULL,   -- 0-4095
  tof_amb     integer,
  tof_h       smallint NOT NULL,    -- sensor height, mm
  spec_counts integer[] NOT NULL,   -- AS7341_CHANNELS order
  spec_gain   smallint NOT NULL,
  spec_atime  smallint NOT NULL,
  spec_astep  integer NOT NULL,
  temp        real,
  sim_tier    text,                 -- SIMULATION GROUND TRUTH
  sim_defects text[],
  PRIMARY KEY (dev, boot, seq)
);
CREATE INDEX sqal_samples_dev_ts_idx ON sqal_samples (dev, ts DESC);
CREATE INDEX sqal_samples_lot_idx ON sqal_samples (lot) WHERE lot IS NOT NULL;
CREATE INDEX sqal_samples_ts_idx ON sqal_samples (ts DESC);

CREATE TABLE feeding_records (
  dev         text NOT NULL,
  boot        bigint NOT NULL,
  seq         bigint NOT NULL,
  ts          timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  lot         text NOT NULL,
  site        text NOT NULL,
  feeder_id   integer NOT NULL,
  feeder      text NOT NULL,
  genetics    text NOT NULL,
  day         smallint NOT NULL,
  days        smallint NOT NULL,
  moment      text NOT NULL,
  dose_th     real NOT NULL,
  dose        real NOT NULL,
  weight      real NOT NULL,
  alive       integer NOT NULL,
  initial     integer NOT NULL,
  mortality   real NOT NULL,
  pen_t       real NOT NULL,
  pen_rh      real NOT NULL,
  ready       boolean NOT NULL,
  PRIMARY KEY (dev, boot, seq)
);
CREATE INDEX feeding_records_lot_idx ON feeding_records (lot, ts);
CREATE INDEX feeding_records_dev_ts_idx ON feeding_records (dev, ts DESC);

-- Alarms, fault onset / clearance, reboot reasons.
CREATE TABLE events (
  dev         text NOT NULL,
  boot        bigint NOT NULL,
  seq         bigint NOT NULL,
  ts          timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  kind        text NOT NULL,
  site        text NOT NULL,
  type        text NOT NULL,
  sev         text NOT NULL,
  msg         text,
  fault       text,
  data        jsonb,
  PRIMARY KEY (dev, boot, seq)
);
CREATE INDEX events_dev_ts_idx ON events (dev, ts DESC);
CREATE INDEX events_sev_ts_idx ON events (sev, ts DESC);

-- Whatever could not be decoded, validated or stored: raw bytes, topic, stage and reason.
CREATE TABLE dead_letters (
  id          bigserial PRIMARY KEY,
  received_at timestamptz NOT NULL,
  topic       text NOT NULL,
  payload     bytea NOT NULL,
  stage       text NOT NULL,      -- topic | cbor | schema | utf8 | envelope | store
  reason      text NOT NULL,
  dev         text                -- the device id from the topic, when it parsed
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at DESC);
CREATE INDEX dead_letters_dev_idx ON dead_letters (dev) WHERE dev IS NOT NULL;
