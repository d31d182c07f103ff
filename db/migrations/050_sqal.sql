-- sqal: grades, lots (feeding → inspection → decision), inspections, transitions, fridge diagnosis.
-- Owned by the sqal service (migrations 050-099). Keyed by the device envelope (dev, boot, seq) so the
-- service never depends on ingest having stored the same message, and never counts a message twice.

-- One row per graded SQAL sample.
CREATE TABLE sqal_grades (
  dev             text NOT NULL,
  boot            bigint NOT NULL,
  seq             bigint NOT NULL,
  ts              timestamptz NOT NULL,      -- device clock
  graded_at       timestamptz NOT NULL,      -- service clock
  site            text NOT NULL,
  sample          text NOT NULL,
  lot             text,
  idx             integer,
  inspection_id   bigint,                    -- the inspection this sample counted for, if any
  score           real NOT NULL,             -- final, 0..1
  grade           text NOT NULL,             -- A+ | A | B | C | REJECT
  tof_score       real NOT NULL,
  spectral_score  real NOT NULL,
  thickness_mm    real NOT NULL,
  thickness_class text NOT NULL,
  volume_mm3      integer NOT NULL,
  liver_weight_g  real NOT NULL,
  defects         integer NOT NULL,
  alert           text,                      -- highest alert level: critical | warning
  features        jsonb NOT NULL,            -- ToF features + defects, spectral ratios/indices/anomalies, sub-scores
  alerts          jsonb NOT NULL,
  sim_tier        text,                      -- SIMULATION GROUND TRUTH (kept for scoring only)
  PRIMARY KEY (dev, boot, seq)
);
CREATE UNIQUE INDEX sqal_grades_inspection_idx ON sqal_grades (inspection_id, idx) WHERE inspection_id IS NOT NULL;
CREATE INDEX sqal_grades_lot_idx ON sqal_grades (lot, ts) WHERE lot IS NOT NULL;
CREATE INDEX sqal_grades_ts_idx ON sqal_grades (ts DESC);
CREATE INDEX sqal_grades_dev_ts_idx ON sqal_grades (dev, ts DESC);

-- A lot: built from feeding records, then inspected and decided.
CREATE TABLE sqal_lots (
  code            text PRIMARY KEY,
  site            text NOT NULL,
  feeder_id       integer,
  feeder          text,
  genetics        text,
  initial         integer,
  days            integer,
  status          text NOT NULL,             -- feeding | pending | inspecting | inspected | approved | rejected | error
  status_at       timestamptz NOT NULL,
  created_at      timestamptz NOT NULL,
  feedings        integer NOT NULL DEFAULT 0,
  last_day        integer,
  start_weight    real,
  weight          real,                      -- latest mean live weight, g
  alive           integer,
  mortality       real,                      -- %
  ready_at        timestamptz,
  profile         text,                      -- premium | standard | low
  samples_n       integer,                   -- N samples asked of the station
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz,
  inspection_id   bigint,                    -- current / last inspection
  station         text,
  decision        text,                      -- approved | rejected
  reason          text                       -- last error or decision reason
);
CREATE INDEX sqal_lots_status_idx ON sqal_lots (status);
CREATE INDEX sqal_lots_site_idx ON sqal_lots (site, created_at DESC);

-- The feeding records a lot was built from (deduplicated on the envelope).
CREATE TABLE sqal_lot_feedings (
  dev       text NOT NULL,
  boot      bigint NOT NULL,
  seq       bigint NOT NULL,
  lot       text NOT NULL,
  ts        timestamptz NOT NULL,
  day       integer NOT NULL,
  moment    text NOT NULL,
  dose_th   real NOT NULL,
  dose      real NOT NULL,
  weight    real NOT NULL,
  alive     integer NOT NULL,
  mortality real NOT NULL,
  pen_t     real NOT NULL,
  pen_rh    real NOT NULL,
  ready     boolean NOT NULL,
  PRIMARY KEY (dev, boot, seq)
);
CREATE INDEX sqal_lot_feedings_lot_idx ON sqal_lot_feedings (lot, day);

-- One row per inspection attempt (cmd/inspect sent to a station).
CREATE TABLE sqal_inspections (
  id           bigserial PRIMARY KEY,
  lot          text NOT NULL,
  attempt      integer NOT NULL,
  station      text NOT NULL,
  site         text NOT NULL,
  cmd_id       text NOT NULL UNIQUE,
  n            integer NOT NULL,
  profile      text NOT NULL,
  requested_at timestamptz NOT NULL,
  deadline_at  timestamptz NOT NULL,
  accepted_at  timestamptz,
  finished_at  timestamptz,
  outcome      text,                         -- done | refused | timeout | station_offline | superseded
  error        text
);
CREATE INDEX sqal_inspections_lot_idx ON sqal_inspections (lot, id);

-- Every lot status transition, with its time and reason.
CREATE TABLE sqal_lot_transitions (
  id          bigserial PRIMARY KEY,
  lot         text NOT NULL,
  from_status text,
  to_status   text NOT NULL,
  at          timestamptz NOT NULL,
  reason      text
);
CREATE INDEX sqal_lot_transitions_lot_idx ON sqal_lot_transitions (lot, id);

-- Fridge diagnosis events (raised / changed / cleared).
CREATE TABLE sqal_diagnosis_events (
  id         bigserial PRIMARY KEY,
  dev        text NOT NULL,
  site       text NOT NULL,
  at         timestamptz NOT NULL,
  type       text NOT NULL,
  fault      text NOT NULL,
  previous   text,
  confidence real NOT NULL,
  truth      text                            -- SIMULATION GROUND TRUTH at that reading, when present
);
CREATE INDEX sqal_diagnosis_events_dev_idx ON sqal_diagnosis_events (dev, at DESC);
