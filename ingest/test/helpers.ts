/**
 * A lean publisher harness for ingest tests and benchmarks: builds valid envelopes for each channel with
 * the schemas' topic helpers and codec, and publishes them at QoS 1 from N real MQTT.js clients.
 */
import mqtt from "mqtt";
import { AS7341_CHANNELS, deviceTopic, encodeCbor, type DeviceAddress, NOMINAL_FRIDGE } from "@esp-fleet/schemas";

export interface Msg {
  topic: string;
  payload: Uint8Array;
}

export function fridgeReading(a: DeviceAddress, boot: number, seq: number, ts = Date.now()): Msg {
  return {
    topic: deviceTopic(a, "telemetry"),
    payload: encodeCbor({
      v: 1,
      dev: a.dev,
      boot,
      seq,
      ts,
      ...NOMINAL_FRIDGE,
      t: 4.5 + (seq % 10) / 10,
      door: seq % 7 === 0,
      sim: { fault: null },
    }),
  };
}

export function sqalSample(a: DeviceAddress, boot: number, seq: number, ts = Date.now()): Msg {
  const dist = new Uint16Array(64).map((_, i) => 20 + ((i * 7 + seq) % 60));
  const spec: Record<string, number> = { gain: 3, atime: 29, astep: 599 };
  AS7341_CHANNELS.forEach((c, i) => (spec[c] = 400 + i * 100 + (seq % 50)));
  return {
    topic: deviceTopic(a, "telemetry"),
    payload: encodeCbor({
      v: 1,
      dev: a.dev,
      boot,
      seq,
      ts,
      sample: `${a.dev}-${boot}-${seq}`,
      lot: "LL2512001",
      idx: seq % 5,
      tof: {
        dist,
        status: new Uint8Array(64).fill(5),
        refl: new Uint8Array(64).fill(40),
        amp: new Uint16Array(64).fill(1200),
        amb: 3,
        h: 100,
      },
      spec,
      temp: 21.5,
      sim: { tier: "good", defects: ["foreign_body"] },
    }),
  };
}

export function statusMsg(a: DeviceAddress, boot: number, seq: number, state: "online" | "offline", ts = Date.now()): Msg {
  return {
    topic: deviceTopic(a, "status"),
    payload: encodeCbor({ v: 1, dev: a.dev, boot, seq, ts, state, reason: state === "online" ? "boot" : "shutdown" }),
  };
}

export function metaMsg(a: DeviceAddress, boot: number, seq: number, fw = "1.2.3"): Msg {
  return {
    topic: deviceTopic(a, "meta"),
    payload: encodeCbor({
      v: 1,
      dev: a.dev,
      boot,
      seq,
      ts: Date.now(),
      kind: a.kind,
      site: a.site,
      fw,
      mac: "24:0A:C4:00:00:01",
      sensors: [{ name: "VL53L8CH", addr: 0x29, ok: true }],
      emulated: true,
    }),
  };
}

export function eventMsg(a: DeviceAddress, boot: number, seq: number): Msg {
  return {
    topic: deviceTopic(a, "event"),
    payload: encodeCbor({
      v: 1,
      dev: a.dev,
      boot,
      seq,
      ts: Date.now(),
      type: "fault_onset",
      sev: "warning",
      fault: "fuite_fluide",
      data: { cycles: 4 },
    }),
  };
}

/** Publish every message at QoS 1 (optionally retained) spread over `clients` connections; resolves when all are PUBACKed. */
export async function publishAll(url: string, messages: readonly Msg[], clients = 4, retain = false): Promise<void> {
  const conns = await Promise.all(
    Array.from({ length: clients }, (_, i) =>
      mqtt.connectAsync(url, {
        clientId: `pub-${process.pid}-${i}-${Math.random().toString(36).slice(2)}`,
        reconnectPeriod: 200,
      }),
    ),
  );
  try {
    await Promise.all(
      conns.map(async (c, i) => {
        const mine = messages.filter((_, j) => j % clients === i);
        const window = 200;
        for (let k = 0; k < mine.length; k += window) {
          await Promise.all(
            mine.slice(k, k + window).map((m) => c.publishAsync(m.topic, Buffer.from(m.payload), { qos: 1, retain })),
          );
        }
      }),
    );
  } finally {
    await Promise.all(conns.map((c) => c.endAsync()));
  }
}

export async function count(db: { query<R>(sql: string): Promise<{ rows: R[] }> }, table: string): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r.rows[0]?.n ?? 0;
}
