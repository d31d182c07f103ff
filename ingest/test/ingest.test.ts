import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { buildHttpApp, createHttpContext } from "@esp-fleet/common/http";
import { silentLogger } from "@esp-fleet/common/logger";
import {
  createTestDatabase,
  needsPostgres,
  startTestBroker,
  testDatabaseUrl,
  waitFor,
  type TestBroker,
} from "@esp-fleet/common/testing";
import { deviceTopic, encodeCbor, type DeviceAddress } from "@esp-fleet/schemas";
import { migrate, openDb, type Db } from "@esp-fleet/db";
import { createIngest, ingestHttpPlugin, type IngestOptions, type IngestService } from "../src/index.ts";
import { count, eventMsg, fridgeReading, metaMsg, publishAll, sqalSample, statusMsg, type Msg } from "./helpers.ts";

const logger = silentLogger();

function suite(name: string, openTestDb: () => Promise<{ db: Db; cleanup(): Promise<void> }>) {
  describe(name, () => {
    let broker: TestBroker;
    let db: Db;
    let cleanup: () => Promise<void>;
    let ingest: IngestService;
    const clientId = `ingest-test-${Math.random().toString(36).slice(2)}`;
    let registry: Registry;
    const start = async () => {
      registry = new Registry();
      const s = createIngest({ db, mqttUrl: broker.url, clientId, logger, metrics: registry, batchSize: 200, batchMs: 20 });
      await s.start();
      return s;
    };

    beforeAll(async () => {
      broker = await startTestBroker();
      ({ db, cleanup } = await openTestDb());
      await migrate(db, { logger });
      ingest = await start();
    });
    afterAll(async () => {
      await ingest?.stop();
      await broker?.close();
      await db?.close();
      await cleanup?.();
    });

    const fridges: DeviceAddress[] = Array.from({ length: 6 }, (_, i) => ({
      site: i % 2 ? "LL" : "LS",
      kind: "fridge",
      dev: `FR_${name}_${i}`,
    }));
    const stations: DeviceAddress[] = Array.from({ length: 3 }, (_, i) => ({
      site: "LL",
      kind: "sqal",
      dev: `ESP32_LL_${name}_${i}`,
    }));
    const sent: Msg[] = [];

    it("stores every distinct (dev, boot, seq) exactly once from N publishers, with the registry", async () => {
      for (const a of [...fridges, ...stations]) {
        sent.push(metaMsg(a, 1, 0), statusMsg(a, 1, 0, "online"), eventMsg(a, 1, 0));
        for (let seq = 0; seq < 60; seq++) sent.push(a.kind === "fridge" ? fridgeReading(a, 1, seq) : sqalSample(a, 1, seq));
      }
      // The same readings published again by a device that retried (duplicates on the wire).
      const dupes = sent.filter((_, i) => i % 5 === 0);
      await publishAll(broker.url, [...sent, ...dupes], 5);
      await waitFor(
        async () => (await count(db, "fridge_readings")) === 6 * 60 && (await count(db, "sqal_samples")) === 3 * 60,
        "all readings stored",
      );
      await ingest.drain();
      expect(await count(db, "device_status")).toBe(9);
      expect(await count(db, "events")).toBe(9);
      const devs = await db.query<{ id: string; status: string; fw: string; kind: string; emulated: boolean }>(
        "SELECT * FROM devices ORDER BY id",
      );
      expect(devs.rows).toHaveLength(9);
      for (const d of devs.rows) expect(d).toMatchObject({ status: "online", fw: "1.2.3", emulated: true });
      const s = ingest.stats();
      expect(s.duplicates).toBeGreaterThanOrEqual(dupes.length - 3 * 9); // meta duplicates are registry no-ops, not rows
      // Per-message counters are folded into the series when scraped: every message received is there.
      const metrics = await registry.metrics();
      const series = (line: string) =>
        Number(
          metrics
            .split("\n")
            .find((l) => l.startsWith(line))
            ?.split(" ")
            .pop(),
        );
      const all = [...sent, ...dupes];
      const on = (channel: string) => all.filter((m) => m.topic.endsWith(`/${channel}`)).length;
      expect(series('esp_fleet_ingest_received_total{channel="telemetry"}')).toBe(on("telemetry"));
      expect(series('esp_fleet_ingest_received_total{channel="status"}')).toBe(on("status"));
      expect(series('esp_fleet_ingest_received_total{channel="meta"}')).toBe(on("meta"));
      expect(series("esp_fleet_ingest_pending ")).toBe(0);
      // and nothing is counted twice by a second scrape
      expect(await registry.metrics()).toBe(metrics);
      // ToF frames are stored as the wire's bytes (migration 002) and read back as arrays through the view.
      const sample = await db.query<{
        seq: number;
        tof_dist: number[];
        tof_status: number[];
        tof_refl: number[];
        tof_amp: number[];
        spec_counts: number[];
        sim_defects: string[];
        raw_dist: Uint8Array;
      }>(
        `SELECT a.seq, a.tof_dist, a.tof_status, a.tof_refl, a.tof_amp, a.spec_counts, a.sim_defects, s.tof_dist AS raw_dist
         FROM sqal_samples_arrays a JOIN sqal_samples s USING (dev, boot, seq) ORDER BY a.dev, a.seq DESC LIMIT 1`,
      );
      const row = sample.rows[0]!;
      const dist = Array.from({ length: 64 }, (_, i) => 20 + ((i * 7 + row.seq) % 60));
      expect(row.tof_dist).toEqual(dist);
      expect([...row.raw_dist]).toEqual(dist.flatMap((v) => [v & 0xff, v >> 8]));
      expect(row.tof_status).toEqual(new Array(64).fill(5));
      expect(row.tof_refl).toEqual(new Array(64).fill(40));
      expect(row.tof_amp).toEqual(new Array(64).fill(1200));
      expect(sample.rows[0]!.spec_counts).toHaveLength(10);
      expect(sample.rows[0]!.sim_defects).toEqual(["foreign_body"]);
    });

    it("stores nothing twice when everything is delivered again", async () => {
      const before = ingest.stats().duplicates;
      await publishAll(broker.url, sent, 3);
      await waitFor(() => ingest.stats().duplicates - before >= sent.length - 9, "redeliveries counted");
      expect(await count(db, "fridge_readings")).toBe(6 * 60);
      expect(await count(db, "sqal_samples")).toBe(3 * 60);
      expect(await count(db, "device_status")).toBe(9);
    });

    it("dead-letters malformed payloads with raw bytes and reason, and keeps storing", async () => {
      const a = fridges[0]!;
      const bad: Msg[] = [
        { topic: `LL/fridge/${a.dev}/telemetry`, payload: new Uint8Array([0xff, 0x00, 0x13]) },
        { topic: `LL/fridge/${a.dev}/telemetry`, payload: encodeCbor({ v: 1, dev: a.dev, boot: 1, seq: 999, ts: 1 }) },
        { topic: `LL/fridge/${a.dev}/telemetry`, payload: fridgeReading({ ...a, dev: "someone_else" }, 1, 1000).payload },
        { topic: `LL/toaster/${a.dev}/telemetry`, payload: fridgeReading(a, 1, 1001).payload },
      ];
      await publishAll(broker.url, [...bad, fridgeReading(a, 2, 0)], 1);
      await waitFor(async () => (await count(db, "dead_letters")) === 4, "4 dead letters");
      await waitFor(async () => (await count(db, "fridge_readings")) === 6 * 60 + 1, "the good reading after them");
      const dl = await db.query<{ stage: string; payload: Uint8Array; reason: string }>(
        "SELECT stage, payload, reason FROM dead_letters ORDER BY id",
      );
      expect(dl.rows.map((r) => r.stage).sort()).toEqual(["cbor", "envelope", "schema", "topic"]);
      const cbor = dl.rows.find((r) => r.stage === "cbor")!;
      expect([...cbor.payload]).toEqual([0xff, 0x00, 0x13]);
      expect(dl.rows.find((r) => r.stage === "schema")!.reason).toMatch(/telemetry\/fridge/);
    });

    it("registry follows status: a later offline wins, a re-sent old status changes nothing", async () => {
      const a = fridges[1]!;
      await publishAll(broker.url, [statusMsg(a, 1, 1, "offline")], 1);
      await waitFor(
        async () =>
          (await db.query<{ status: string }>("SELECT status FROM devices WHERE id = $1", [a.dev])).rows[0]?.status === "offline",
        "offline",
      );
      await publishAll(broker.url, [statusMsg(a, 1, 0, "online")], 1); // the old birth again: a duplicate
      await ingest.drain();
      await new Promise((r) => setTimeout(r, 100));
      await ingest.drain();
      expect((await db.query<{ status: string }>("SELECT status FROM devices WHERE id = $1", [a.dev])).rows[0]?.status).toBe(
        "offline",
      );
    });

    it("keeps what was published while ingest was down (persistent session) and stores it once", async () => {
      await ingest.stop();
      const a = stations[0]!;
      const offline = Array.from({ length: 150 }, (_, i) => sqalSample(a, 3, i));
      await publishAll(broker.url, offline, 2);
      ingest = await start();
      await waitFor(async () => (await count(db, "sqal_samples")) === 3 * 60 + 150, "offline backlog stored", 20_000);
    });

    it("serves devices, telemetry, buckets and dead letters over HTTP, and 400 on bad queries", async () => {
      const ctx = createHttpContext(logger, { defaultMetrics: false });
      const app = buildHttpApp(ctx);
      await app.register(ingestHttpPlugin, { db, ingest, ctx });
      try {
        const list = await app.inject({ url: "/api/v1/devices?kind=fridge&site=LL" });
        expect(list.statusCode).toBe(200);
        expect(list.json().devices).toHaveLength(3);
        const dev = fridges[0]!.dev;
        const one = await app.inject({ url: `/api/v1/devices/${dev}` });
        expect(one.json().device).toMatchObject({ id: dev, kind: "fridge", fw: "1.2.3" });
        const tel = await app.inject({ url: `/api/v1/devices/${dev}/telemetry?limit=5` });
        expect(tel.statusCode).toBe(200);
        expect(tel.json().rows).toHaveLength(5);
        const station = await app.inject({ url: `/api/v1/devices/${stations[0]!.dev}/telemetry?limit=2` });
        expect(station.json().rows[0].tof_dist).toHaveLength(64);
        expect(station.json().rows[0].tof_status[0]).toBe(5);
        const b = await app.inject({ url: `/api/v1/devices/${dev}/telemetry/buckets?bucket=1h` });
        expect(b.statusCode).toBe(200);
        expect(b.json().buckets.reduce((s: number, x: { n: number }) => s + Number(x.n), 0)).toBe(61);
        const dl = await app.inject({ url: "/api/v1/dead-letters?stage=cbor" });
        expect(dl.json().deadLetters[0].payload).toBe("ff0013");
        const bad = await app.inject({ url: "/api/v1/devices?kind=toaster" });
        expect(bad.statusCode).toBe(400);
        expect(bad.json().message).toMatch(/kind/);
        const badDate = await app.inject({ url: `/api/v1/devices/${dev}/telemetry?from=yesterday` });
        expect(badDate.statusCode).toBe(400);
        expect((await app.inject({ url: "/api/v1/devices/nobody" })).statusCode).toBe(404);
        const ready = await app.inject({ url: "/health/ready" });
        expect(ready.json()).toMatchObject({ ready: true, checks: { db: { ok: true }, mqtt: { ok: true } } });
      } finally {
        await app.close();
      }
    });
  });
}

suite("PGlite", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "ingest-test-"));
  return { db: await openDb({ dataDir, logger }), cleanup: () => rm(dataDir, { recursive: true, force: true }) };
});

describe.skipIf(!testDatabaseUrl)(`PostgreSQL${needsPostgres}`, () => {
  suite("pg", async () => {
    const t = await createTestDatabase("ingest");
    return { db: await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger }), cleanup: () => t.drop() };
  });

  /**
   * A fresh database and broker, an ingest on them (`start`) and a second PostgreSQL session (`locker`)
   * to hold locks with; everything is stopped and dropped after `fn`.
   */
  async function withLocker(
    name: string,
    fn: (r: {
      db: Db;
      broker: TestBroker;
      locker: import("pg").Client;
      start: (o: Partial<IngestOptions>) => Promise<IngestService>;
    }) => Promise<void>,
  ): Promise<void> {
    const t = await createTestDatabase(name);
    const db = await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger });
    const broker = await startTestBroker();
    const { default: pg } = await import("pg");
    const locker = new pg.Client({ connectionString: t.url });
    let ingest: IngestService | undefined;
    try {
      await migrate(db, { logger });
      await locker.connect();
      await fn({
        db,
        broker,
        locker,
        start: async (o) => {
          ingest = createIngest({ db, mqttUrl: broker.url, clientId: name, logger, ...o });
          await ingest.start();
          return ingest;
        },
      });
    } finally {
      await locker.end().catch(() => undefined);
      await ingest?.stop();
      await broker.close();
      await db.close();
      await t.drop();
    }
  }

  it("works off a backlog left by a slow commit in larger batches, storing each reading once", () =>
    withLocker("ingestcatchup", async ({ db, broker, locker, start }) => {
      const ingest = await start({ batchSize: 100, batchMs: 20 });
      // A commit that cannot finish: another session holds the readings table.
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE fridge_readings IN ACCESS EXCLUSIVE MODE");
      const fridges: DeviceAddress[] = Array.from({ length: 10 }, (_, i) => ({ site: "LL", kind: "fridge", dev: `FR_CU_${i}` }));
      const sent = fridges.flatMap((a) => Array.from({ length: 200 }, (_, seq) => fridgeReading(a, 1, seq)));
      await publishAll(broker.url, sent, 4);
      await waitFor(async () => ingest.stats().pending === sent.length, "every reading received and waiting");
      const batchesBefore = ingest.stats().batches;
      await locker.query("COMMIT");
      await waitFor(async () => (await count(db, "fridge_readings")) === sent.length, "all readings stored");
      await ingest.drain();
      // 2,000 waiting readings in batches of at most 4 × 100: the two blocked batches of 100 (two commit at
      // once) and then ≤ 5 more, where fixed batches of 100 would take 20.
      expect(ingest.stats().batches - batchesBefore).toBeLessThanOrEqual(7);
      expect(ingest.stats().stored).toBe(sent.length);
      expect(ingest.stats().duplicates).toBe(0);
    }));

  it("acknowledges in arrival order when a later batch commits first (two batches in flight)", () =>
    withLocker("ingestorder", async ({ db, broker, locker, start }) => {
      const acked: string[] = [];
      broker.aedes.on("ack", (packet, client) => {
        if (client?.id === "ingestorder" && packet && "topic" in packet) acked.push(packet.topic);
      });
      const a: DeviceAddress = { site: "LL", kind: "fridge", dev: "FR_OA" };
      const b: DeviceAddress = { site: "LL", kind: "fridge", dev: "FR_OB" };
      // FR_OA's registry row exists and another session holds it: the batch that upserts it waits.
      await db.query(
        "INSERT INTO devices (id, kind, site, first_seen, last_seen) VALUES ('FR_OA', 'fridge', 'LL', now(), now())",
      );
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM devices WHERE id = 'FR_OA' FOR UPDATE");
      const ingest = await start({ batchSize: 5, batchMs: 60_000 });
      await publishAll(
        broker.url,
        Array.from({ length: 5 }, (_, seq) => fridgeReading(a, 1, seq)),
        1,
      );
      await publishAll(
        broker.url,
        Array.from({ length: 5 }, (_, seq) => fridgeReading(b, 1, seq)),
        1,
      );
      // The second batch commits while the first waits for the row lock…
      await waitFor(
        async () => (await db.query("SELECT 1 FROM fridge_readings WHERE dev = 'FR_OB'")).rowCount === 5,
        "FR_OB stored",
      );
      await new Promise((r) => setTimeout(r, 300));
      // …but its PUBACKs wait for the first batch's.
      expect(acked).toEqual([]);
      expect(ingest.stats()).toMatchObject({ stored: 5, pending: 10, acked: 0 });
      await locker.query("COMMIT");
      await waitFor(() => acked.length === 10, "all ten acknowledged");
      expect(acked).toEqual([...Array(5).fill(deviceTopic(a, "telemetry")), ...Array(5).fill(deviceTopic(b, "telemetry"))]);
      expect(await count(db, "fridge_readings")).toBe(10);
    }));
});
