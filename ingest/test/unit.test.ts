import { describe, expect, it } from "vitest";
import { decodeCbor, encodeCbor } from "@esp-fleet/schemas";
import { TABLE_COLUMNS, classify, copyText } from "../src/rows.ts";
import { isTransientDbError } from "../src/store.ts";
import { deviceHash, ownsDevice, parsePartition, subscriptionFilters } from "../src/partition.ts";
import { fridgeReading, sqalSample } from "./helpers.ts";

/** The fields of one binary COPY tuple (null for NULL). */
function fields(tuple: Uint8Array): (Buffer | null)[] {
  const b = Buffer.from(tuple);
  const out: (Buffer | null)[] = [];
  let p = 2;
  for (let i = 0; i < b.readInt16BE(0); i++) {
    const n = b.readInt32BE(p);
    out.push(n < 0 ? null : b.subarray(p + 4, p + 4 + n));
    p += 4 + Math.max(n, 0);
  }
  expect(p).toBe(b.length);
  return out;
}

/** Unix ms from a binary timestamptz (µs since 2000-01-01). */
const tsMs = (f: Buffer | null) => Number(f!.readBigInt64BE(0) / 1000n) + 946_684_800_000;

describe("classify", () => {
  it("renders a fridge reading as one binary COPY tuple with envelope, receive time and ground truth", () => {
    const m = fridgeReading({ site: "LL", kind: "fridge", dev: "F1" }, 2, 7, 1_700_000_000_000);
    const o = classify(m.topic, m.payload, 1_700_000_000_500);
    expect(o.type).toBe("row");
    if (o.type !== "row") return;
    expect(o.table).toBe("fridge_readings");
    const f = fields(o.tuple);
    expect(f).toHaveLength(TABLE_COLUMNS.fridge_readings.length);
    expect(f[0]!.toString()).toBe("F1");
    expect([f[1]!.readBigInt64BE(0), f[2]!.readBigInt64BE(0)]).toEqual([2n, 7n]);
    expect([tsMs(f[3]!), tsMs(f[4]!)]).toEqual([1_700_000_000_000, 1_700_000_000_500]);
    expect(f[5]!.readFloatBE(0)).toBeCloseTo(4.5 + 0.7, 5); // t
    expect(f.at(-2)).toBeNull(); // sim.fault null
    expect([...f.at(-1)!]).toEqual([1]); // ground truth present
  });

  it("renders SQAL ToF frames as the wire's little-endian bytes and the spectrum as int4[]", () => {
    const m = sqalSample({ site: "LL", kind: "sqal", dev: "S1" }, 1, 0);
    const o = classify(m.topic, m.payload, Date.now());
    if (o.type !== "row") throw new Error(`expected a row, got ${o.type}`);
    const f = fields(o.tuple);
    const col = (name: string) => f[TABLE_COLUMNS.sqal_samples.indexOf(name)]!;
    const dist = Array.from({ length: 64 }, (_, i) => 20 + ((i * 7) % 60));
    expect([...col("tof_dist")]).toEqual(dist.flatMap((v) => [v & 0xff, v >> 8]));
    expect([...col("tof_status")]).toEqual(new Array(64).fill(5));
    expect(col("tof_amp").readUInt16LE(0)).toBe(1200);
    expect(col("spec_counts").readInt32BE(12)).toBe(10); // one dimension of 10 elements
    expect(col("sim_defects").includes(Buffer.from("foreign_body"))).toBe(true);
  });

  it("dead-letters a value its column cannot hold, at stage store, instead of wrapping it", () => {
    // tof.h is a uint16 on the wire and a smallint in the table: 40,000 passes the schema, not the column.
    const m = sqalSample({ site: "LL", kind: "sqal", dev: "S1" }, 1, 0);
    const decoded = decodeCbor(m.payload);
    if (!decoded.ok) throw new Error(decoded.error);
    const msg = decoded.value as { tof: { h: number } };
    msg.tof.h = 40_000;
    const o = classify(m.topic, encodeCbor(msg), Date.now());
    expect(o).toMatchObject({ type: "dead", stage: "store", dev: "S1" });
    expect(o.type === "dead" && o.reason).toMatch(/sqal_samples/);
  });

  it("dead-letters each failure with its stage", () => {
    expect(classify("LL/fridge/F1/telemetry", new Uint8Array([0xff, 0x00, 0x13]), 0)).toMatchObject({
      type: "dead",
      stage: "cbor",
      dev: "F1",
    });
    expect(classify("nope", encodeCbor({}), 0)).toMatchObject({ type: "dead", stage: "topic", dev: null });
    expect(classify("LL/fridge/F1/telemetry", encodeCbor({ v: 1 }), 0)).toMatchObject({ type: "dead", stage: "schema" });
    const other = fridgeReading({ site: "LL", kind: "fridge", dev: "F2" }, 1, 1);
    expect(classify("LL/fridge/F1/telemetry", other.payload, 0)).toMatchObject({ type: "dead", stage: "envelope" });
    expect(classify("LL/fridge/F1/log", new TextEncoder().encode("hello"), 0)).toMatchObject({ type: "ignored" });
  });

  it("escapes COPY text", () => {
    expect(copyText("a\tb\nc\\d\re")).toBe("a\\tb\\nc\\\\d\\re");
    expect(copyText("plain")).toBe("plain");
  });
});

describe("partition", () => {
  it("builds per-site and shared filters", () => {
    expect(subscriptionFilters({})).toEqual(["+/+/+/telemetry", "+/+/+/status", "+/+/+/meta", "+/+/+/event"]);
    expect(subscriptionFilters({ sites: ["LL"], shareGroup: "ingest" })[0]).toBe("$share/ingest/LL/+/+/telemetry");
  });
  it("splits devices by hash into disjoint, covering shares", () => {
    const devs = Array.from({ length: 1000 }, (_, i) => `dev${i}`);
    const shares = [0, 1, 2].map((index) => devs.filter((d) => ownsDevice({ hash: { index, count: 3 } }, d)).length);
    expect(shares.reduce((a, b) => a + b)).toBe(1000);
    for (const n of shares) expect(n).toBeGreaterThan(250);
    expect(deviceHash("abc")).toBe(deviceHash("abc"));
  });
  it("refuses bad partition settings naming the variable", () => {
    expect(() => parsePartition(undefined, "3/3", undefined)).toThrow(/INGEST_PARTITION/);
    expect(() => parsePartition("LL,L/S", undefined, undefined)).toThrow(/INGEST_SITES/);
    expect(parsePartition("LL, LS", "1/4", "g")).toEqual({ sites: ["LL", "LS"], hash: { index: 1, count: 4 }, shareGroup: "g" });
  });
});

describe("isTransientDbError", () => {
  it("retries connection loss and shutdowns, not data errors", () => {
    expect(isTransientDbError(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(isTransientDbError(Object.assign(new Error("x"), { code: "57P01" }))).toBe(true);
    expect(isTransientDbError(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isTransientDbError(Object.assign(new Error("x"), { code: "22003" }))).toBe(false);
    expect(isTransientDbError(new TypeError("bug"))).toBe(false);
  });
});
