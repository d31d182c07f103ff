import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, startTestBroker, waitFor } from "@esp-fleet/common/testing";
import { decodeMessage, filters } from "@esp-fleet/schemas";
import { startFleet, type Fleet } from "../src/fleet.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p));
const inCi = process.env.CI === "true";

interface Received {
  topic: string;
  retain: boolean;
  msg: Record<string, unknown>;
}

/** A subscriber that decodes (and asserts the validity of) everything it receives. */
async function subscriber(url: string, filter: string, opts: { clientId?: string; clean?: boolean } = {}) {
  const got: Received[] = [];
  const invalid: string[] = [];
  const client = mqtt.connect(url, { reconnectPeriod: 100, clientId: opts.clientId, clean: opts.clean ?? true });
  client.on("message", (topic, payload, packet) => {
    const d = decodeMessage(topic, payload);
    if (!d.ok) invalid.push(`${topic}: ${d.error.error}`);
    else
      got.push({
        topic,
        retain: packet.retain,
        msg: (typeof d.value.message === "string" ? { text: d.value.message } : d.value.message) as Record<string, unknown>,
      });
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => client.subscribe(filter, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
    client.once("error", reject);
  });
  return { client, got, invalid };
}

function telemetryByDevice(got: Received[]): Map<string, number[]> {
  const by = new Map<string, number[]>();
  for (const r of got) {
    if (!r.topic.endsWith("/telemetry")) continue;
    const key = `${r.msg.dev as string}#${r.msg.boot as number}`;
    let a = by.get(key);
    if (!a) by.set(key, (a = []));
    a.push(r.msg.seq as number);
  }
  return by;
}

async function startMosquitto(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "emu-mosq-"));
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n`);
  const proc = spawn(MOSQUITTO as string, ["-c", conf], { stdio: "ignore" });
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 500 });
        c.once("connect", () => c.end(true, () => resolve(true)));
        c.once("error", () => c.end(true, () => resolve(false)));
      }),
    "mosquitto to listen",
  );
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const endClient = (c: MqttClient) => () => new Promise<void>((r) => c.end(true, () => r()));

const BROKERS = [
  {
    name: "Aedes (in-process)",
    start: async () => {
      const b = await startTestBroker();
      return { url: b.url, stop: () => b.close() };
    },
  },
  { name: "Mosquitto", start: async () => startMosquitto(), missing: !MOSQUITTO },
] as const;

for (const broker of BROKERS) {
  const skip = "missing" in broker && broker.missing && !inCi;
  describe.skipIf(skip)(
    `fleet against a real broker: ${broker.name}${skip ? " (skipped: mosquitto binary not found)" : ""}`,
    () => {
      it("N devices come online (retained status), publish at the configured rate, every (dev, boot, seq) exactly once in order", async () => {
        const b = await broker.start();
        cleanups.push(() => b.stop());
        const sub = await subscriber(b.url, filters.allDevices);
        cleanups.push(endClient(sub.client));
        const CYCLES = 15;
        const fleet: Fleet = await startFleet({
          url: b.url,
          devices: 12,
          kinds: ["sqal", "fridge"],
          sites: ["LL", "MT"],
          seed: 5,
          intervalMs: 100,
          cycles: CYCLES,
          faultProb: 0.2,
          rampMs: 100,
        });
        cleanups.push(() => fleet.stop());
        await waitFor(() => fleet.stats().online === 12, "12 devices online");
        // A late subscriber sees every device's retained birth.
        const late = await subscriber(b.url, filters.channel("status"));
        cleanups.push(endClient(late.client));
        await waitFor(
          () => new Set(late.got.filter((r) => r.retain && r.msg.state === "online").map((r) => r.msg.dev)).size === 12,
          "12 retained births",
        );
        const started = Date.now();
        await fleet.done;
        const elapsed = Date.now() - started;
        await waitFor(
          () => [...telemetryByDevice(sub.got).values()].reduce((s, a) => s + a.length, 0) >= 12 * CYCLES,
          "all telemetry",
        );
        expect(sub.invalid).toEqual([]);
        const by = telemetryByDevice(sub.got);
        expect(by.size).toBe(12);
        for (const [, seqs] of by) expect(seqs).toEqual(Array.from({ length: CYCLES }, (_, i) => i));
        // 15 readings at 100 ms: about 1.5 s of wall time (rate, not a benchmark: generous bounds).
        expect(elapsed).toBeLessThan(6000);
        const metas = sub.got.filter((r) => r.topic.endsWith("/meta"));
        expect(new Set(metas.map((r) => r.msg.dev)).size).toBe(12);
        // Clean shutdown → retained offline for every device.
        await fleet.stop();
        await waitFor(
          () =>
            new Set(late.got.filter((r) => r.msg.state === "offline" && r.msg.reason === "shutdown").map((r) => r.msg.dev))
              .size === 12,
          "12 clean offline statuses",
        );
      });
    },
  );
}

describe("broker restart and crashes", () => {
  it("killing the broker and restarting it loses nothing that fit in the FIFO; the flush is in order", async () => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    let gateOpen = true;
    const SUB = "emu-test-sub";
    // What the brokers accepted from the devices (before their PUBACK), per device in arrival order: the
    // devices' side of the bargain. What a broker then routes is the broker's: Aedes acknowledges a QoS 1
    // message before it routes it, so one killed with its state in memory can lose a message it had
    // acknowledged and not yet delivered.
    const accepted = new Map<string, { seq: number; broker: number }[]>();
    let generation = 0;
    const startBroker = async () => {
      const gen = ++generation;
      const aedes = await Aedes.createBroker({
        drainTimeout: 2000,
        authenticate: (client, _u, _p, cb) => {
          if (gateOpen || client.id === SUB) return cb(null, true);
          const e = Object.assign(new Error("not yet"), { returnCode: 3 });
          cb(e as never, false);
        },
        authorizePublish: (_client, packet, cb) => {
          const d = packet.topic.endsWith("/telemetry") ? decodeMessage(packet.topic, packet.payload as Buffer) : undefined;
          if (d?.ok) {
            const m = d.value.message as { dev: string; boot: number; seq: number };
            const key = `${m.dev}#${m.boot}`;
            let a = accepted.get(key);
            if (!a) accepted.set(key, (a = []));
            a.push({ seq: m.seq, broker: gen });
          }
          cb(null);
        },
      });
      const server: Server = createServer(aedes.handle);
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      return {
        aedes,
        close: async () => {
          await new Promise<void>((r) => aedes.close(() => r()));
          await new Promise<void>((r) => server.close(() => r()));
        },
      };
    };
    let broker = await startBroker();
    cleanups.push(() => broker.close());
    const sub = await subscriber(url, filters.telemetry(), { clientId: SUB, clean: false });
    cleanups.push(endClient(sub.client));
    const fleet = await startFleet({
      url,
      devices: 6,
      kinds: ["fridge", "sqal"],
      seed: 9,
      intervalMs: 100,
      rampMs: 50,
      firmware: { fifoSize: 1000, backoffMinMs: 300, backoffMaxMs: 600, watchdogMs: 0 },
    });
    cleanups.push(() => fleet.stop());
    await waitFor(() => fleet.stats().online === 6, "6 devices online");
    await new Promise((r) => setTimeout(r, 800));
    await broker.close();
    await waitFor(() => fleet.stats().online === 0, "devices notice the broker is gone");
    await waitFor(() => fleet.stats().buffered >= 6 * 8, "readings buffering offline");
    // Restart; admit only the subscriber until it has re-subscribed, then the devices.
    gateOpen = false;
    broker = await startBroker();
    const resubscribed = new Promise<void>((resolve) => broker.aedes.on("subscribe", (_s, c) => c?.id === SUB && resolve()));
    await resubscribed;
    gateOpen = true;
    await waitFor(() => fleet.stats().online === 6, "6 devices back online", 15_000);
    const target = fleet.stats().readings;
    await fleet.stop();
    const uniqueAccepted = () => [...accepted.values()].reduce((s, a) => s + new Set(a.map((r) => r.seq)).size, 0);
    await waitFor(() => uniqueAccepted() >= target, "every reading accepted by a broker", 15_000);
    expect(fleet.stats().dropped).toBe(0);
    expect(fleet.stats().reconnects).toBeGreaterThanOrEqual(6);
    expect(accepted.size).toBe(6);
    for (const [dev, arrivals] of accepted) {
      const seqs = arrivals.map((r) => r.seq);
      const unique = [...new Set(seqs)];
      // nothing lost: contiguous from 0
      expect(unique, dev).toEqual(Array.from({ length: unique.length }, (_, i) => i));
      // in order: the first arrival of each seq is increasing (QoS 1 may resend one in flight at the crash)
      expect(unique, dev).toEqual([...unique].sort((a, b) => a - b));
      expect(seqs.length - unique.length, dev).toBeLessThanOrEqual(2);
      // the FIFO went to the restarted broker
      expect(arrivals.some((r) => r.broker === 2)).toBe(true);
    }
    // and the restarted broker delivered everything it accepted, once per seq, to the subscriber
    const delivered = telemetryByDevice(sub.got);
    const fromSecond = [...accepted].flatMap(([dev, a]) => a.filter((r) => r.broker === 2).map((r) => `${dev}:${r.seq}`));
    const isDelivered = (k: string) => {
      const i = k.lastIndexOf(":");
      return delivered.get(k.slice(0, i))?.includes(Number(k.slice(i + 1))) ?? false;
    };
    await waitFor(() => fromSecond.every(isDelivered), "the restarted broker's readings at the subscriber", 15_000);
    expect(sub.invalid).toEqual([]);
  });

  it("kill -9 of the emulator process makes the broker publish every device's will", async () => {
    const b = await startTestBroker();
    cleanups.push(() => b.close());
    const sub = await subscriber(b.url, filters.channel("status"));
    cleanups.push(endClient(sub.client));
    const dataDir = mkdtempSync(join(tmpdir(), "emu-kill-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const child: ChildProcess = spawn(
      process.execPath,
      [
        join(ROOT, "cli/bin/esp-fleet.mjs"),
        "emulate",
        "--url",
        b.url,
        "-n",
        "6",
        "--kind",
        "fridge,sqal",
        "--interval",
        "200",
        "--data-dir",
        dataDir,
        "--no-progress",
      ],
      { stdio: "ignore", env: { ...process.env, LOG_LEVEL: "warn" } },
    );
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    const online = () => new Set(sub.got.filter((r) => r.msg.state === "online").map((r) => r.msg.dev));
    await waitFor(() => online().size === 6, "6 devices online", 20_000);
    child.kill("SIGKILL");
    await waitFor(
      () =>
        new Set(sub.got.filter((r) => r.msg.state === "offline" && r.msg.reason === "link lost").map((r) => r.msg.dev)).size ===
        6,
      "6 wills",
    );
    const wills = sub.got.filter((r) => r.msg.state === "offline");
    for (const w of wills) expect(w.msg.boot).toBe(1);
    // A restarted emulator boots with the next boot counter (persisted in the data dir).
    const again = spawn(
      process.execPath,
      [
        join(ROOT, "cli/bin/esp-fleet.mjs"),
        "emulate",
        "--url",
        b.url,
        "-n",
        "6",
        "--kind",
        "fridge,sqal",
        "--cycles",
        "2",
        "--data-dir",
        dataDir,
        "--no-progress",
      ],
      { stdio: "ignore", env: { ...process.env, LOG_LEVEL: "warn" } },
    );
    const code = await new Promise<number | null>((r) => again.once("exit", r));
    expect(code).toBe(0);
    const births2 = sub.got.filter((r) => r.msg.state === "online" && r.msg.boot === 2);
    expect(new Set(births2.map((r) => r.msg.dev)).size).toBe(6);
  });

  it("exits non-zero when the broker is unreachable beyond the bound", async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        join(ROOT, "cli/bin/esp-fleet.mjs"),
        "emulate",
        "--url",
        `mqtt://127.0.0.1:${port}`,
        "-n",
        "2",
        "--max-offline",
        "2s",
        "--no-progress",
        "--json",
      ],
      { stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, LOG_LEVEL: "silent" } },
    );
    let out = "";
    child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(code).toBe(1);
    const summary = JSON.parse(out.trim().split("\n").at(-1) as string) as { ok: boolean; failure: string };
    expect(summary.ok).toBe(false);
    expect(summary.failure).toMatch(/unreachable/);
  });
});
