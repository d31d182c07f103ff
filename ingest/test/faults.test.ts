import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { Registry } from "prom-client";
import { silentLogger } from "@esp-fleet/common/logger";
import {
  createTestDatabase,
  needsPostgres,
  startTestBroker,
  testDatabaseUrl,
  waitFor,
  type TestBroker,
} from "@esp-fleet/common/testing";
import { needsPrivatePostgres, startPrivatePostgres, type PrivatePostgres } from "@esp-fleet/common/testing-postgres";
import type { DeviceAddress } from "@esp-fleet/schemas";
import { migrate, openDb, type Db } from "@esp-fleet/db";
import { createIngest, type IngestService } from "../src/index.ts";
import { count, fridgeReading, type Msg } from "./helpers.ts";

const logger = silentLogger();
const CI = process.env.CI === "true";

/** Publish `messages` at QoS 1 at about `perSecond`, re-publishing every 10th (a device retrying). */
async function stream(url: string, messages: readonly Msg[], perSecond: number): Promise<void> {
  const c = await mqtt.connectAsync(url, { clientId: `pub-${Math.random().toString(36).slice(2)}` });
  try {
    const tick = 20;
    const per = Math.max(1, Math.round((perSecond * tick) / 1000));
    for (let i = 0; i < messages.length; i += per) {
      const slice = messages.slice(i, i + per);
      await Promise.all(slice.map((m) => c.publishAsync(m.topic, Buffer.from(m.payload), { qos: 1 })));
      if (i % (per * 10) === 0 && slice[0]) await c.publishAsync(slice[0].topic, Buffer.from(slice[0].payload), { qos: 1 });
      await new Promise((r) => setTimeout(r, tick));
    }
  } finally {
    await c.endAsync();
  }
}

function readings(n: number, devices: number, tag: string): Msg[] {
  const addrs: DeviceAddress[] = Array.from({ length: devices }, (_, i) => ({ site: "LL", kind: "fridge", dev: `${tag}_${i}` }));
  const out: Msg[] = [];
  for (let seq = 0; out.length < n; seq++) for (const a of addrs) if (out.length < n) out.push(fridgeReading(a, 1, seq));
  return out;
}

describe.skipIf(!CI && (needsPrivatePostgres !== "" || !testDatabaseUrl))(
  `fault recovery${needsPrivatePostgres}${needsPostgres}`,
  () => {
    let broker: TestBroker | undefined;
    let pg: PrivatePostgres | undefined;
    let db: Db | undefined;
    let ingest: IngestService | undefined;
    let child: ChildProcess | undefined;
    const drops: (() => Promise<void>)[] = [];

    afterEach(async () => {
      child?.kill("SIGKILL");
      await ingest?.stop(2000);
      await broker?.close();
      await db?.close();
      await pg?.destroy();
      for (const d of drops.splice(0)) await d();
      child = ingest = broker = db = pg = undefined;
    });
    afterAll(() => child?.kill("SIGKILL"));

    it("PostgreSQL stopped for 10 s mid-stream: after it returns every reading is stored exactly once", async () => {
      pg = await startPrivatePostgres();
      broker = await startTestBroker();
      db = await openDb({ databaseUrl: pg.url, dataDir: "/nonexistent", logger, poolMax: 4 });
      await migrate(db, { logger });
      ingest = createIngest({
        db,
        mqttUrl: broker.url,
        clientId: "ingest-pgdown",
        logger,
        metrics: new Registry(),
        batchSize: 100,
        batchMs: 20,
        maxPending: 800,
        maxRetryDelayMs: 1000,
      });
      await ingest.start();
      const msgs = readings(3000, 10, "FRpgdown");
      const publishing = stream(broker.url, msgs, 200); // ~15 s of traffic
      await waitFor(async () => (await count(db!, "fridge_readings")) > 200, "some readings stored before the outage");
      await pg.stop();
      await new Promise((r) => setTimeout(r, 10_000));
      expect(ingest.stats().dbHealthy).toBe(false);
      await pg.start();
      await publishing;
      await waitFor(
        async () => (await count(db!, "fridge_readings")) >= msgs.length,
        "every reading stored after recovery",
        30_000,
      );
      await ingest.drain();
      expect(await count(db, "fridge_readings")).toBe(msgs.length);
      expect(await count(db, "dead_letters")).toBe(0);
      expect(ingest.stats().retries).toBeGreaterThan(0);
      // (120 s: a private server's initdb, ~15 s of traffic, the 10 s outage and up to 30 s of recovery
      // took 62 s on a loaded CI runner)
    }, 120_000);

    it("kill -9 of the ingest process mid-stream and restart: every reading stored exactly once", async () => {
      const t = await createTestDatabase("ingestkill");
      drops.push(() => t.drop());
      broker = await startTestBroker();
      db = await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger });
      await migrate(db, { logger });
      const childFile = fileURLToPath(new URL("./fixtures/ingest-child.ts", import.meta.url));
      const env = { ...process.env, INGEST_TEST_DB: t.url, INGEST_TEST_MQTT: broker.url, INGEST_TEST_CLIENT_ID: "ingest-kill" };
      const startChild = async () => {
        const c = spawn(process.execPath, ["--import", "tsx", childFile], { env, stdio: ["ignore", "pipe", "inherit"] });
        child = c;
        await new Promise<void>((resolve, reject) => {
          c.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && resolve());
          c.once("exit", (code) => reject(new Error(`ingest child exited with ${code}`)));
        });
        return c;
      };
      let c = await startChild();
      const msgs = readings(4000, 20, "FRkill");
      const publishing = stream(broker.url, msgs, 1000);
      await waitFor(async () => (await count(db!, "fridge_readings")) > 800, "some readings stored before the kill");
      c.kill("SIGKILL");
      await new Promise((r) => c.once("exit", r));
      const atKill = await count(db, "fridge_readings");
      expect(atKill).toBeLessThan(msgs.length);
      await new Promise((r) => setTimeout(r, 500));
      c = await startChild();
      await publishing;
      await waitFor(
        async () => (await count(db!, "fridge_readings")) >= msgs.length,
        "every reading stored after restart",
        30_000,
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(await count(db, "fridge_readings")).toBe(msgs.length);
      const dup = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM (SELECT dev, boot, seq FROM fridge_readings GROUP BY 1,2,3 HAVING count(*) > 1) d",
      );
      expect(dup.rows[0]?.n).toBe(0);
    }, 60_000);
  },
);
