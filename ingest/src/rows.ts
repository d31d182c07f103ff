import {
  AS7341_CHANNELS,
  decodeMessage,
  envelopeMatchesTopic,
  type DeviceEvent,
  type DeviceKind,
  type FeedingRecord,
  type FridgeReading,
  type Meta,
  type SqalSample,
  type Status,
} from "@esp-fleet/schemas";
import { CopyTupleWriter } from "@esp-fleet/db/copy-binary";

/**
 * Pure mapping from a received MQTT message to what ingest stores: a row of one channel table (already
 * rendered as a binary COPY tuple, in `TABLE_COLUMNS` order), a registry update, or a dead letter. No I/O.
 */

export type ChannelTable = "fridge_readings" | "sqal_samples" | "feeding_records" | "device_status" | "events";

export const TABLE_COLUMNS: Record<ChannelTable, readonly string[]> = {
  fridge_readings: [
    "dev",
    "boot",
    "seq",
    "ts",
    "received_at",
    "t",
    "t_evap",
    "p_lo",
    "p_hi",
    "i_comp",
    "v_sup",
    "vib",
    "rh",
    "flow",
    "door",
    "comp",
    "defrost",
    "sim_fault",
    "sim",
  ],
  sqal_samples: [
    "dev",
    "boot",
    "seq",
    "ts",
    "received_at",
    "sample",
    "lot",
    "idx",
    "tof_dist",
    "tof_status",
    "tof_refl",
    "tof_amp",
    "tof_amb",
    "tof_h",
    "spec_counts",
    "spec_gain",
    "spec_atime",
    "spec_astep",
    "temp",
    "sim_tier",
    "sim_defects",
  ],
  feeding_records: [
    "dev",
    "boot",
    "seq",
    "ts",
    "received_at",
    "lot",
    "site",
    "feeder_id",
    "feeder",
    "genetics",
    "day",
    "days",
    "moment",
    "dose_th",
    "dose",
    "weight",
    "alive",
    "initial",
    "mortality",
    "pen_t",
    "pen_rh",
    "ready",
  ],
  device_status: [
    "dev",
    "boot",
    "seq",
    "ts",
    "received_at",
    "state",
    "reason",
    "uptime",
    "heap",
    "rssi",
    "cnt_sent",
    "cnt_buffered",
    "cnt_dropped",
    "cnt_reconnects",
    "cnt_i2c_err",
  ],
  events: ["dev", "boot", "seq", "ts", "received_at", "kind", "site", "type", "sev", "msg", "fault", "data"],
};

export const CHANNEL_TABLES = Object.keys(TABLE_COLUMNS) as ChannelTable[];

export interface DeviceRef {
  dev: string;
  kind: DeviceKind;
  site: string;
}

export interface StatusUpdate {
  state: Status["state"];
  reason: string | null;
  boot: number;
}

export interface MetaUpdate {
  boot: number;
  seq: number;
  fw: string;
  hw: string | null;
  mac: string;
  emulated: boolean | null;
  kind: DeviceKind;
  site: string;
  /** JSON of the meta message without its envelope. */
  json: string;
}

export type Outcome =
  | {
      type: "row";
      table: ChannelTable;
      device: DeviceRef;
      /** The idempotency key (dev, boot, seq) joined with NULs. */
      key: string;
      /** The row as one tuple of a binary COPY stream (`copyBinaryFile` assembles a batch). */
      tuple: Uint8Array;
      ts: number;
      status?: StatusUpdate;
    }
  | { type: "meta"; device: DeviceRef; meta: MetaUpdate; ts: number }
  | { type: "dead"; stage: string; reason: string; dev: string | null }
  | { type: "ignored"; reason: string };

/** The largest ms timestamp a JavaScript Date holds. */
const MAX_DATE_MS = 8.64e15;

/** Decode, validate and map one message. Never throws. */
export function classify(topic: string, payload: Uint8Array, receivedAt: number): Outcome {
  const decoded = decodeMessage(topic, payload);
  if (!decoded.ok) {
    const t = decoded.error.topic;
    return {
      type: "dead",
      stage: decoded.error.stage,
      reason: decoded.error.error,
      dev: t && t.type === "device" ? t.dev : null,
    };
  }
  const d = decoded.value;
  const t = d.topic;
  if (t.type !== "device") return { type: "ignored", reason: `not a device topic (${d.schema})` };
  const mismatch = envelopeMatchesTopic(d);
  if (mismatch) return { type: "dead", stage: "envelope", reason: mismatch, dev: t.dev };
  const device: DeviceRef = { dev: t.dev, kind: t.kind, site: t.site };
  const env = d.message as EnvelopeFields;
  if (t.channel === "telemetry" || t.channel === "status" || t.channel === "event" || t.channel === "meta") {
    if (env.ts > MAX_DATE_MS)
      return { type: "dead", stage: "schema", reason: `ts ${env.ts} is beyond the representable date range`, dev: t.dev };
  }
  switch (t.channel) {
    case "telemetry":
      switch (t.kind) {
        case "fridge":
          return row("fridge_readings", device, env, receivedAt, fridgeTail, d.message as FridgeReading);
        case "sqal":
          return row("sqal_samples", device, env, receivedAt, sqalTail, d.message as SqalSample);
        case "gavage":
          return row("feeding_records", device, env, receivedAt, feedingTail, d.message as FeedingRecord);
        default: {
          const never: never = t.kind;
          return never;
        }
      }
    case "status": {
      const s = d.message as Status;
      return row("device_status", device, env, receivedAt, statusTail, s, {
        state: s.state,
        reason: s.reason ?? null,
        boot: s.boot,
      });
    }
    case "event":
      return row("events", device, env, receivedAt, eventTail, d.message as DeviceEvent);
    case "meta": {
      const m = d.message as Meta;
      const { v: _v, dev: _d, boot: _b, seq: _s, ts: _t, ...body } = m;
      return {
        type: "meta",
        device,
        ts: env.ts,
        meta: {
          boot: m.boot,
          seq: m.seq,
          fw: m.fw,
          hw: m.hw ?? null,
          mac: m.mac,
          emulated: m.emulated ?? null,
          kind: m.kind,
          site: m.site,
          json: JSON.stringify(body),
        },
      };
    }
    case "log":
    case "cmd":
    case "cmd_res":
      return { type: "ignored", reason: `channel ${t.channel} is not stored by ingest` };
    default: {
      const never: never = t;
      return never;
    }
  }
}

// ---------------------------------------------------------------------------- binary COPY rendering

/** One scratch writer: classify is synchronous, and `take()` copies the tuple out. */
const writer = new CopyTupleWriter(4096);

interface EnvelopeFields {
  dev: string;
  boot: number;
  seq: number;
  ts: number;
}

/** Renders a table's own columns after the envelope (module-level functions: nothing allocated per message). */
type Tail<M> = (w: CopyTupleWriter, message: M, device: DeviceRef) => void;

/**
 * A channel row: the envelope columns, then the table's own. A value that does not fit its column (e.g. a
 * uint16 in a smallint) cannot be written in binary; like the server's refusal of it in text COPY, it
 * becomes a `store` dead letter with the reason.
 */
function row<M>(
  table: ChannelTable,
  device: DeviceRef,
  env: EnvelopeFields,
  receivedAt: number,
  tail: Tail<M>,
  message: M,
  status?: StatusUpdate,
): Outcome {
  let tuple: Uint8Array;
  try {
    writer
      .tuple(TABLE_COLUMNS[table].length)
      .text(env.dev)
      .int8(env.boot)
      .int8(env.seq)
      .timestamptz(env.ts)
      .timestamptz(receivedAt);
    tail(writer, message, device);
    tuple = writer.take();
  } catch (e) {
    if (e instanceof RangeError) return { type: "dead", stage: "store", reason: `${table}: ${e.message}`, dev: device.dev };
    throw e;
  }
  const key = `${env.dev}\u0000${env.boot}\u0000${env.seq}`;
  return status
    ? { type: "row", table, device, key, ts: env.ts, tuple, status }
    : { type: "row", table, device, key, ts: env.ts, tuple };
}

function fridgeTail(w: CopyTupleWriter, r: FridgeReading): void {
  w.float4(r.t)
    .float4(r.t_evap)
    .float4(r.p_lo)
    .float4(r.p_hi)
    .float4(r.i_comp)
    .float4(r.v_sup)
    .float4(r.vib)
    .float4(r.rh)
    .float4(r.flow)
    .bool(r.door)
    .bool(r.comp)
    .bool(r.defrost)
    .text(r.sim?.fault ?? null)
    .bool(r.sim !== undefined);
}

/** The ToF matrices go in as the wire's bytes (migration 002): uint16 little-endian, uint8 as is. */
function sqalTail(w: CopyTupleWriter, s: SqalSample): void {
  const spec = s.spec;
  w.text(s.sample)
    .text(s.lot)
    .int4(s.idx)
    .byteaUint16LE(s.tof.dist)
    .bytea(s.tof.status)
    .bytea(s.tof.refl)
    .byteaUint16LE(s.tof.amp)
    .int4(s.tof.amb)
    .int2(s.tof.h)
    .int4Array(AS7341_CHANNELS.map((c) => spec[c]))
    .int2(spec.gain)
    .int2(spec.atime)
    .int4(spec.astep)
    .float4(s.temp)
    .text(s.sim?.tier ?? null)
    .textArray(s.sim ? s.sim.defects : null);
}

function feedingTail(w: CopyTupleWriter, f: FeedingRecord): void {
  w.text(f.lot)
    .text(f.site)
    .int4(f.feeder_id)
    .text(f.feeder)
    .text(f.genetics)
    .int2(f.day)
    .int2(f.days)
    .text(f.moment)
    .float4(f.dose_th)
    .float4(f.dose)
    .float4(f.weight)
    .int4(f.alive)
    .int4(f.initial)
    .float4(f.mortality)
    .float4(f.pen_t)
    .float4(f.pen_rh)
    .bool(f.ready);
}

function statusTail(w: CopyTupleWriter, s: Status): void {
  const c = s.cnt;
  w.text(s.state)
    .text(s.reason)
    .int8(s.uptime)
    .int8(s.heap)
    .int2(s.rssi)
    .int8(c?.sent)
    .int8(c?.buffered)
    .int8(c?.dropped)
    .int8(c?.reconnects)
    .int8(c?.i2c_err);
}

function eventTail(w: CopyTupleWriter, e: DeviceEvent, d: DeviceRef): void {
  w.text(d.kind)
    .text(d.site)
    .text(e.type)
    .text(e.sev)
    .text(e.msg)
    .text(e.fault)
    .jsonb(e.data ? JSON.stringify(e.data) : null);
}

// -------------------------------------------------------------------- COPY text (dead letters)

const NEEDS_ESCAPE = /[\\\t\n\r]/;

/** A text value in COPY text format. */
export function copyText(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
}

/** Bytes as a bytea value in COPY text format (`\\x…`). */
export function copyBytea(bytes: Uint8Array): string {
  return `\\\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`;
}
