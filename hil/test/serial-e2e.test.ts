import { afterEach, describe, expect, it } from "vitest";
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
import { decodeCbor, type FridgeReading } from "@esp-fleet/schemas";
import { migrate, openDb, type Db } from "@esp-fleet/db";
import { createIngest, type IngestService } from "@esp-fleet/ingest";
import { SerialBridge } from "../src/bridge.ts";
import { hasSocat, openPtyPair, type PtyPair } from "../src/pty.ts";
import { runSerialDevice, type SerialDeviceHandle } from "../src/run-serial-device.ts";

const inCi = process.env.CI === "true";
const skip = !inCi && (!hasSocat() || !testDatabaseUrl);
const why = !hasSocat() ? " (skipped: needs the socat binary)" : needsPostgres;

const log = silentLogger();

describe.skipIf(skip)(`serial device → bridge → broker → ingest → PostgreSQL over a socat pty pair${skip ? why : ""}`, () => {
  let cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups = [];
  });

  async function rig(dev: string) {
    const broker: TestBroker = await startTestBroker();
    cleanups.push(() => broker.close());
    const tdb = await createTestDatabase("hil");
    cleanups.push(() => tdb.drop());
    const db: Db = await openDb({ databaseUrl: tdb.url, dataDir: "/nonexistent", logger: log });
    cleanups.push(() => db.close());
    await migrate(db, { logger: log });
    const ingest: IngestService = createIngest({
      db,
      mqttUrl: broker.url,
      clientId: `ingest-${dev}`,
      logger: log,
      metrics: new Registry(),
      batchMs: 20,
    });
    await ingest.start();
    cleanups.push(() => ingest.stop());
    const pty: PtyPair = await openPtyPair();
    cleanups.push(() => pty.close());
    const bridge = new SerialBridge({ port: pty.b, mqttUrl: broker.url, log, metrics: new Registry(), reopenMs: 200 });
    await bridge.start();
    cleanups.push(() => bridge.stop());
    return { broker, db, ingest, pty, bridge };
  }

  async function readings(db: Db, dev: string) {
    const r = await db.query<{ boot: number; seq: number; t: number; p_hi: number; flow: number }>(
      "SELECT boot, seq, t, p_hi, flow FROM fridge_readings WHERE dev = $1 ORDER BY boot, seq",
      [dev],
    );
    return r.rows;
  }

  async function runAndCheck(dev: string, noise: { bitErrorRate: number; burstProb: number } | undefined) {
    const { db, pty, bridge, broker } = await rig(dev);
    const sent: FridgeReading[] = [];
    const N = 120;
    const device: SerialDeviceHandle = await runSerialDevice({
      path: pty.a,
      kind: "fridge",
      site: "LL",
      id: dev,
      seed: 7,
      firmware: { intervalMs: 15, heartbeatMs: 60_000, cycles: N, faultProb: 0.2, wifiJoinMs: [10, 20] },
      ...(noise ? { noise: { ...noise, burstMin: 4, burstMax: 48, seed: 3 } } : {}),
      tap: (ch, p) => {
        if (ch === "telemetry" && typeof p !== "string") sent.push((decodeCbor(p) as { ok: true; value: FridgeReading }).value);
      },
      log,
    });
    cleanups.push(() => device.kill());
    const logs: string[] = [];
    const sub = await mqtt.connectAsync(broker.url, { clientId: `watch-${dev}` });
    cleanups.push(() => sub.endAsync());
    sub.on("message", (topic, payload) => {
      if (topic.endsWith("/log")) logs.push(payload.toString());
    });
    await sub.subscribeAsync(`LL/fridge/${dev}/log`);

    await waitFor(async () => (await readings(db, dev)).length >= N, `${N} readings stored`, 25_000, 100);
    await waitFor(
      () => device.transport.counters.link.acked === device.transport.counters.link.sent,
      "every frame acknowledged",
      10_000,
    );
    const rows = await readings(db, dev);
    // exactly once, and each row is the reading the device produced (nothing corrupted got in)
    expect(rows).toHaveLength(N);
    expect(sent).toHaveLength(N);
    for (const [i, row] of rows.entries()) {
      const want = sent[i]!;
      expect([row.boot, row.seq]).toEqual([want.boot, want.seq]);
      expect(row.t).toBeCloseTo(want.t, 3);
      expect(row.p_hi).toBeCloseTo(want.p_hi, 3);
      expect(row.flow).toBeCloseTo(want.flow, 2);
    }
    const dead = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM dead_letters");
    expect(dead.rows[0]!.n).toBe(0);
    return { device, bridge, logs };
  }

  it("stores every reading exactly once on a clean line; boot-ROM console text reaches `log`", async () => {
    const { device, bridge, logs } = await runAndCheck("FR_SER_CLEAN", undefined);
    const link = device.transport.counters.link;
    expect(bridge.counters.crcErrors + bridge.counters.malformed + bridge.counters.resyncs).toBe(0);
    expect(bridge.linkCounters.received).toBe(link.sent);
    // nothing is lost on a clean line: a retransmission (slow ack on a busy machine) arrives as a duplicate
    expect(link.sent + link.retries).toBe(bridge.linkCounters.received + bridge.linkCounters.duplicates);
    await waitFor(() => logs.some((l) => l.includes("rst:0x1 (POWERON_RESET)")), "boot-ROM text on log");
  });

  it("with bit flips at 1e-4 and garbage bursts: nothing corrupted stored, losses retried, every frame accounted for", async () => {
    const { device, bridge } = await runAndCheck("FR_SER_NOISY", { bitErrorRate: 1e-4, burstProb: 0.03 });
    const link = device.transport.counters.link;
    const host = bridge.linkCounters;
    const badBlocks = bridge.counters.crcErrors + bridge.counters.malformed + bridge.counters.oversize;
    // every distinct publish was delivered once …
    expect(host.received).toBe(link.sent);
    // … retransmissions were needed, and each transmission either arrived (new or duplicate) or died on the line
    expect(link.retries).toBeGreaterThan(0);
    const lostOnLine = link.sent + link.retries - (host.received + host.duplicates);
    expect(lostOnLine).toBeGreaterThan(0);
    expect(badBlocks).toBeGreaterThan(0);
    expect(lostOnLine).toBeLessThanOrEqual(2 * badBlocks);
    expect(bridge.counters.resyncs).toBe(badBlocks);
    expect(bridge.counters.bodyErrors).toBe(0);
    expect(device.noise.tx.counters.bitFlips + device.noise.tx.counters.bursts).toBeGreaterThan(0);
  });
});
