import { describe, expect, it } from "vitest";
import { encodeCbor } from "@esp-fleet/schemas";
import { classify, copyText } from "../src/rows.ts";
import { isTransientDbError } from "../src/store.ts";
import { deviceHash, ownsDevice, parsePartition, subscriptionFilters } from "../src/partition.ts";
import { fridgeReading, sqalSample } from "./helpers.ts";

describe("classify", () => {
  it("renders a fridge reading as one COPY line with envelope, receive time and ground truth", () => {
    const o = classify(
      fridgeReading({ site: "LL", kind: "fridge", dev: "F1" }, 2, 7, 1_700_000_000_000).topic,
      fridgeReading({ site: "LL", kind: "fridge", dev: "F1" }, 2, 7, 1_700_000_000_000).payload,
      1_700_000_000_500,
    );
    expect(o.type).toBe("row");
    if (o.type !== "row") return;
    expect(o.table).toBe("fridge_readings");
    const cols = o.line.split("\t");
    expect(cols.slice(0, 5)).toEqual(["F1", "2", "7", "2023-11-14T22:13:20.000Z", "2023-11-14T22:13:20.500Z"]);
    expect(cols.at(-2)).toBe("\\N"); // sim.fault null
    expect(cols.at(-1)).toBe("t"); // ground truth present
  });

  it("renders SQAL arrays as PostgreSQL array literals", () => {
    const m = sqalSample({ site: "LL", kind: "sqal", dev: "S1" }, 1, 0);
    const o = classify(m.topic, m.payload, Date.now());
    expect(o.type === "row" && o.line).toMatch(/\t\{5,5,5,/);
    expect(o.type === "row" && o.line).toContain('{"foreign_body"}');
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
