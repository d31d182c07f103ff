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

/**
 * Pure mapping from a received MQTT message to what ingest stores: a row of one channel table (already
 * rendered as a line of PostgreSQL COPY text), a registry update, or a dead letter. No I/O.
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
  | { type: "row"; table: ChannelTable; device: DeviceRef; key: string; line: string; ts: number; status?: StatusUpdate }
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
  const env = d.message as { dev: string; boot: number; seq: number; ts: number };
  if (t.channel === "telemetry" || t.channel === "status" || t.channel === "event" || t.channel === "meta") {
    if (env.ts > MAX_DATE_MS)
      return { type: "dead", stage: "schema", reason: `ts ${env.ts} is beyond the representable date range`, dev: t.dev };
  }
  const head = () => `${copyText(env.dev)}\t${env.boot}\t${env.seq}\t${iso(env.ts)}\t${iso(receivedAt)}`;
  const key = `${env.dev}\u0000${env.boot}\u0000${env.seq}`;
  switch (t.channel) {
    case "telemetry":
      switch (t.kind) {
        case "fridge":
          return {
            type: "row",
            table: "fridge_readings",
            device,
            key,
            ts: env.ts,
            line: `${head()}\t${fridgeTail(d.message as FridgeReading)}`,
          };
        case "sqal":
          return {
            type: "row",
            table: "sqal_samples",
            device,
            key,
            ts: env.ts,
            line: `${head()}\t${sqalTail(d.message as SqalSample)}`,
          };
        case "gavage":
          return {
            type: "row",
            table: "feeding_records",
            device,
            key,
            ts: env.ts,
            line: `${head()}\t${feedingTail(d.message as FeedingRecord)}`,
          };
        default: {
          const never: never = t.kind;
          return never;
        }
      }
    case "status": {
      const s = d.message as Status;
      return {
        type: "row",
        table: "device_status",
        device,
        key,
        ts: env.ts,
        line: `${head()}\t${statusTail(s)}`,
        status: { state: s.state, reason: s.reason ?? null, boot: s.boot },
      };
    }
    case "event": {
      const e = d.message as DeviceEvent;
      return { type: "row", table: "events", device, key, ts: env.ts, line: `${head()}\t${eventTail(e, device)}` };
    }
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

// ------------------------------------------------------------------------------ COPY text rendering

const N = "\\N";
const NEEDS_ESCAPE = /[\\\t\n\r]/;

/** A text value in COPY text format. */
export function copyText(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
const opt = (v: number | undefined | null): string => (v === undefined || v === null ? N : String(v));
const optText = (v: string | undefined | null): string => (v === undefined || v === null ? N : copyText(v));
const bool = (v: boolean): string => (v ? "t" : "f");
const intArray = (v: ArrayLike<number> & { join(sep: string): string }): string => `{${v.join(",")}}`;

/** A text[] literal, then escaped for COPY. */
function textArray(v: readonly string[]): string {
  const inner = v.map((s) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`).join(",");
  return copyText(`{${inner}}`);
}

function fridgeTail(r: FridgeReading): string {
  return [
    r.t,
    opt(r.t_evap),
    r.p_lo,
    r.p_hi,
    r.i_comp,
    r.v_sup,
    r.vib,
    r.rh,
    r.flow,
    bool(r.door),
    bool(r.comp),
    bool(r.defrost),
    optText(r.sim?.fault ?? null),
    bool(r.sim !== undefined),
  ].join("\t");
}

function sqalTail(s: SqalSample): string {
  const spec = s.spec;
  const counts = AS7341_CHANNELS.map((c) => spec[c]).join(",");
  return [
    copyText(s.sample),
    optText(s.lot),
    opt(s.idx),
    intArray(s.tof.dist),
    intArray(s.tof.status),
    intArray(s.tof.refl),
    intArray(s.tof.amp),
    opt(s.tof.amb),
    s.tof.h,
    `{${counts}}`,
    spec.gain,
    spec.atime,
    spec.astep,
    opt(s.temp),
    optText(s.sim?.tier ?? null),
    s.sim ? textArray(s.sim.defects) : N,
  ].join("\t");
}

function feedingTail(f: FeedingRecord): string {
  return [
    copyText(f.lot),
    copyText(f.site),
    f.feeder_id,
    copyText(f.feeder),
    f.genetics,
    f.day,
    f.days,
    f.moment,
    f.dose_th,
    f.dose,
    f.weight,
    f.alive,
    f.initial,
    f.mortality,
    f.pen_t,
    f.pen_rh,
    bool(f.ready),
  ].join("\t");
}

function statusTail(s: Status): string {
  const c = s.cnt;
  return [
    s.state,
    optText(s.reason),
    opt(s.uptime),
    opt(s.heap),
    opt(s.rssi),
    opt(c?.sent),
    opt(c?.buffered),
    opt(c?.dropped),
    opt(c?.reconnects),
    opt(c?.i2c_err),
  ].join("\t");
}

function eventTail(e: DeviceEvent, d: DeviceRef): string {
  return [
    d.kind,
    copyText(d.site),
    e.type,
    e.sev,
    optText(e.msg),
    optText(e.fault),
    e.data ? copyText(JSON.stringify(e.data)) : N,
  ].join("\t");
}

/** Bytes as a bytea value in COPY text format (`\\x…`). */
export function copyBytea(bytes: Uint8Array): string {
  return `\\\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`;
}
