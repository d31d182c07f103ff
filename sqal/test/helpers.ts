import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { silentLogger } from "@esp-fleet/common/logger";
import { buildHttpApp, createHttpContext } from "@esp-fleet/common/http";
import { migrate, openDb, type Db } from "@esp-fleet/db";
import {
  commandFilter,
  decodeMessage,
  deviceTopic,
  commandReplyTopic,
  encodeCbor,
  type Command,
  type FeedingRecord,
} from "@esp-fleet/schemas";
import { createRng } from "@esp-fleet/common/random";
import { createTestDatabase, testDatabaseUrl } from "@esp-fleet/common/testing";
import { createSqal, type SqalOptions, type SqalService } from "../src/service.ts";
import { sqalHttpPlugin } from "../src/http.ts";
import { SimulationManager } from "../src/simulations.ts";
import { synthSample } from "../src/testing/synth.ts";

/**
 * A fresh, migrated database: a throw-away PostgreSQL database on TEST_DATABASE_URL when set (fast),
 * else PGlite in a temp dir (the embedded default; its start-up costs seconds).
 */
export async function tempDb(): Promise<{ db: Db; close(): Promise<void> }> {
  if (testDatabaseUrl) {
    const t = await createTestDatabase("sqal");
    const db = await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger: silentLogger(), poolMax: 4 });
    await migrate(db, { logger: silentLogger() });
    return {
      db,
      async close() {
        await db.close();
        await t.drop();
      },
    };
  }
  const dir = await mkdtemp(join(tmpdir(), "sqal-test-"));
  const db = await openDb({ dataDir: dir, logger: silentLogger() });
  await migrate(db, { logger: silentLogger() });
  return {
    db,
    async close() {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let clientSeq = 0;
/** Distinct boot counters, so stations reusing a device id never collide on (dev, boot, seq) in a shared database. */
let bootCounter = (Date.now() % 1_000_000) * 10;
export async function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId: `t-${process.pid}-${clientSeq++}`, reconnectPeriod: 100, ...opts });
}

export async function startSqal(db: Db, url: string, extra: Partial<SqalOptions> = {}) {
  const ctx = createHttpContext(silentLogger(), { defaultMetrics: false });
  const sqal: SqalService = createSqal({
    db,
    mqttUrl: url,
    logger: silentLogger(),
    metrics: ctx.metrics,
    clientId: `sqal-${process.pid}-${clientSeq++}`,
    ...extra,
  });
  const simulations = new SimulationManager(url, silentLogger());
  const app = buildHttpApp(ctx);
  await app.register(sqalHttpPlugin, { sqal, simulations, ctx });
  await sqal.start();
  return {
    sqal,
    app,
    ctx,
    simulations,
    async stop() {
      await simulations.stopAll();
      await app.close();
      await sqal.stop();
    },
  };
}

/** A feeding station that publishes the records of one lot (last one `ready`). */
export async function publishLot(
  client: MqttClient,
  o: { lot: string; site: string; dev?: string; records?: number; weight?: number; mortality?: number; boot?: number },
) {
  const dev = o.dev ?? `GAVAGE_${o.lot}`;
  const n = o.records ?? 4;
  for (let i = 0; i < n; i++) {
    const rec: FeedingRecord = {
      v: 1,
      dev,
      boot: o.boot ?? 1,
      seq: i,
      ts: 1_760_000_000_000 + i * 43_200_000,
      lot: o.lot,
      site: o.site,
      feeder_id: 1,
      feeder: "Jean Martin",
      genetics: "mulard",
      day: Math.floor(i / 2) - 1,
      days: Math.ceil(n / 2),
      moment: i % 2 === 0 ? "morning" : "evening",
      dose_th: 200 + i * 10,
      dose: 200 + i * 10,
      weight: i === n - 1 ? (o.weight ?? 6600) : 4500 + i * 100,
      alive: 50,
      initial: 50,
      mortality: o.mortality ?? 0,
      pen_t: 21,
      pen_rh: 65,
      ready: i === n - 1,
    };
    await client.publishAsync(deviceTopic({ site: o.site, kind: "gavage", dev }, "telemetry"), Buffer.from(encodeCbor(rec)), {
      qos: 1,
    });
  }
}

export interface ScriptedStation {
  dev: string;
  commands: Command<"inspect">[];
  client: MqttClient;
  close(): Promise<void>;
}

/**
 * A minimal SQAL station: retained `status: online`, answers `cmd/inspect` (ok, or refuses when
 * `refuse` is set) and measures N samples tagged with the lot, from the reference generator.
 */
export async function scriptedStation(
  url: string,
  o: { site: string; dev?: string; refuse?: string; samples?: "all" | "none" | number; seed?: number; boot?: number },
): Promise<ScriptedStation> {
  const dev = o.dev ?? `ESP32_${o.site}_01`;
  const addr = { site: o.site, kind: "sqal" as const, dev };
  const client = await connect(url, {
    clientId: dev,
    will: {
      topic: deviceTopic(addr, "status"),
      payload: Buffer.from(encodeCbor({ v: 1, dev, boot: 1, seq: 0, ts: 0, state: "offline" })),
      qos: 1,
      retain: true,
    },
  });
  const rng = createRng(o.seed ?? 1);
  const commands: Command<"inspect">[] = [];
  let seq = 0;
  const boot = o.boot ?? bootCounter++;
  client.on("message", (topic, payload) => {
    const d = decodeMessage(topic, payload);
    if (!d.ok || d.value.schema !== "cmd/inspect") return;
    const cmd = d.value.message as Command<"inspect">;
    commands.push(cmd);
    const reply = o.refuse
      ? { v: 1, dev, boot, seq: seq++, ts: Date.now(), id: cmd.id, ok: false, err: o.refuse }
      : { v: 1, dev, boot, seq: seq++, ts: Date.now(), id: cmd.id, ok: true };
    void client.publishAsync(commandReplyTopic(addr, "inspect"), Buffer.from(encodeCbor(reply)), { qos: 1 }).then(async () => {
      if (o.refuse) return;
      const count = o.samples === "none" ? 0 : typeof o.samples === "number" ? o.samples : cmd.n;
      for (let i = 0; i < count; i++) {
        const s = synthSample(rng, { dev, seq: seq++ });
        const msg = { ...s, boot, lot: cmd.lot, idx: i, sample: `${boot}.${s.seq}` };
        await client.publishAsync(deviceTopic(addr, "telemetry"), Buffer.from(encodeCbor(msg)), { qos: 1 });
      }
    });
  });
  await client.subscribeAsync(commandFilter(addr), { qos: 1 });
  await client.publishAsync(
    deviceTopic(addr, "status"),
    Buffer.from(encodeCbor({ v: 1, dev, boot, seq: 0, ts: Date.now(), state: "online" })),
    { qos: 1, retain: true },
  );
  return {
    dev,
    commands,
    client,
    async close() {
      await client.publishAsync(
        deviceTopic(addr, "status"),
        Buffer.from(encodeCbor({ v: 1, dev, boot, seq: 1, ts: Date.now(), state: "offline" })),
        { qos: 1, retain: true },
      );
      await client.endAsync();
    },
  };
}
