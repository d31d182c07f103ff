import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@esp-fleet/common/logger";
import { createTestDatabase, needsPostgres, testDatabaseUrl } from "@esp-fleet/common/testing";
import { migrate, openDb, type Db } from "@esp-fleet/db";
import type { DeviceAddress } from "@esp-fleet/schemas";
import { classify } from "../src/rows.ts";
import { writeBatch, type BatchItem } from "../src/store.ts";
import { count, fridgeReading, sqalSample, statusMsg, type Msg } from "./helpers.ts";

/**
 * writeBatch's two paths — one straight COPY when nothing in the batch is stored yet, the staging +
 * ON CONFLICT path when something is — must store and count exactly the same.
 */
const logger = silentLogger();
const fridge: DeviceAddress = { site: "LL", kind: "fridge", dev: "F1" };
const station: DeviceAddress = { site: "LL", kind: "sqal", dev: "S1" };
// A redelivery is the same bytes, so the same device ts: each (boot, seq) here has one ts, as on a device.
const T0 = Date.parse("2026-11-22T10:00:00Z");
const reading = (boot: number, seq: number) => fridgeReading(fridge, boot, seq, T0 + boot * 1e6 + seq * 1000);
const sample = (boot: number, seq: number) => sqalSample(station, boot, seq, T0 + boot * 1e6 + seq * 1000);

function items(msgs: readonly Msg[], receivedAt = Date.now()): BatchItem[] {
  return msgs.map((m) => ({ ...m, receivedAt, outcome: classify(m.topic, m.payload, receivedAt) }));
}

function suite(name: string, open: () => Promise<{ db: Db; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let ctx: Awaited<ReturnType<typeof open>>;
    const seen = new Map<string, number>();
    const write = async (msgs: readonly Msg[], at?: number) => {
      const r = await writeBatch(ctx.db, items(msgs, at), { get: (d) => seen.get(d) }, 5000);
      for (const [d, t] of r.seen) seen.set(d, t);
      return r;
    };
    beforeAll(async () => {
      ctx = await open();
      await migrate(ctx.db, { logger });
    });
    afterAll(async () => {
      await ctx.db.close();
      await ctx.cleanup();
    });

    it("stores a batch of new rows with one COPY and counts them", async () => {
      const r = await write([
        ...Array.from({ length: 20 }, (_, i) => reading(1, i)),
        ...Array.from({ length: 5 }, (_, i) => sample(1, i)),
      ]);
      expect(r.inserted).toEqual({ fridge_readings: 20, sqal_samples: 5 });
      expect(r.duplicates).toEqual({ fridge_readings: 0, sqal_samples: 0 });
      expect(await count(ctx.db, "fridge_readings")).toBe(20);
    });

    it("counts exactly when a batch mixes stored rows, new rows and a row twice, and stores each once", async () => {
      const r = await write([
        reading(1, 19), // stored by the previous batch
        reading(1, 20),
        reading(1, 21),
        reading(1, 21), // twice in this batch
        sample(1, 5), // the other table of the batch is all new: it still takes one COPY
      ]);
      expect(r.inserted).toEqual({ fridge_readings: 2, sqal_samples: 1 });
      expect(r.duplicates).toEqual({ fridge_readings: 2, sqal_samples: 0 });
      expect(await count(ctx.db, "fridge_readings")).toBe(22);
      expect(await count(ctx.db, "sqal_samples")).toBe(6);
      const all = await write(Array.from({ length: 22 }, (_, i) => reading(1, i)));
      expect(all.inserted).toEqual({ fridge_readings: 0 });
      expect(all.duplicates).toEqual({ fridge_readings: 22 });
    });

    it("stores a reading that reuses a stored (dev, boot, seq) with another ts as a reading of its own", async () => {
      // Not a redelivery (that carries the same ts) but a device that reused its boot number, e.g. after
      // losing its flash: its readings are kept, on both paths (docs/decisions.md, "Telemetry keys lead
      // with (dev, ts)").
      const reused = (seq: number) => fridgeReading(fridge, 1, seq, T0 + 5e6 + seq * 1000);
      const alone = await write([reused(0)]);
      expect(alone).toMatchObject({ inserted: { fridge_readings: 1 }, duplicates: { fridge_readings: 0 } });
      const mixed = await write([reused(1), reading(1, 1)]); // reading(1, 1) is stored: the dedup path
      expect(mixed).toMatchObject({ inserted: { fridge_readings: 1 }, duplicates: { fridge_readings: 1 } });
      const r = await ctx.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM fridge_readings WHERE dev = $1 AND boot = 1 AND seq IN (0, 1)",
        [fridge.dev],
      );
      expect(r.rows[0]?.n).toBe(4);
    });

    it("applies device status from newly stored status rows on both paths, never from a duplicate", async () => {
      const t0 = Date.now();
      const first = await write([statusMsg(fridge, 1, 0, "online", t0)], t0);
      expect(first).toMatchObject({ inserted: { device_status: 1 }, statusApplied: 1 });
      // Dedup path: the old "online" again (duplicate) and a new "offline".
      const second = await write([statusMsg(fridge, 1, 0, "online", t0), statusMsg(fridge, 1, 1, "offline", t0 + 1)], t0 + 1);
      expect(second).toMatchObject({ inserted: { device_status: 1 }, duplicates: { device_status: 1 }, statusApplied: 1 });
      const dev = await ctx.db.query<{ status: string }>("SELECT status FROM devices WHERE id = $1", [fridge.dev]);
      expect(dev.rows[0]?.status).toBe("offline");
      // A batch holding only the duplicate changes nothing.
      const third = await write([statusMsg(fridge, 1, 0, "online", t0)], t0 + 2);
      expect(third).toMatchObject({ inserted: { device_status: 0 }, statusApplied: 0 });
      const after = await ctx.db.query<{ status: string }>("SELECT status FROM devices WHERE id = $1", [fridge.dev]);
      expect(after.rows[0]?.status).toBe("offline");
    });

    it("lets a data error other than a duplicate through (the service then isolates the message)", async () => {
      const bad = items([reading(1, 100)]);
      const o = bad[0]!.outcome;
      if (o.type !== "row") throw new Error("expected a row");
      const broken = { ...o, tuple: o.tuple.subarray(0, o.tuple.length - 3) }; // a truncated tuple
      await expect(writeBatch(ctx.db, [{ ...bad[0]!, outcome: broken }], { get: () => undefined }, 5000)).rejects.toThrow();
      expect(await count(ctx.db, "fridge_readings")).toBe(24);
    });
  });
}

suite("PGlite", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "ingest-store-"));
  return { db: await openDb({ dataDir, logger }), cleanup: () => rm(dataDir, { recursive: true, force: true }) };
});

describe.skipIf(!testDatabaseUrl)(`PostgreSQL${needsPostgres}`, () => {
  suite("pg", async () => {
    const t = await createTestDatabase("ingeststore");
    return { db: await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger }), cleanup: () => t.drop() };
  });
});
