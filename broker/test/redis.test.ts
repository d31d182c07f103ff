import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { freePort, waitFor } from "@esp-fleet/common/testing";
import { closeClient, connect, startBroker } from "./helpers.ts";

const REDIS = ["/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"].find(existsSync);
const skip = !REDIS && !process.env.CI;
const root = new URL("../..", import.meta.url).pathname;

/** A broker in its own process (`tsx broker/src/main.ts`), so it can be killed with SIGKILL. */
async function spawnBroker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "broker/src/main.ts")], {
    cwd: root,
    env: { ...process.env, LOG_PRETTY: "0", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      if (line.includes('"msg":"ready"')) resolve();
    });
    child.once("exit", (code) => reject(new Error(`broker exited with ${code}: ${stderr}`)));
  });
  return child;
}

describe.skipIf(skip)(`broker on Redis${skip ? " (skipped: redis-server not installed)" : ""}`, () => {
  let redis: ChildProcess | undefined;
  let redisUrl = "";
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "broker-redis-"));
    const port = await freePort();
    redis = spawn(
      REDIS!,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir,
      ],
      { stdio: "ignore" },
    );
    redisUrl = `redis://127.0.0.1:${port}`;
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => {});
    await waitFor(async () => {
      await probe.connect().catch(() => {});
      return (await probe.ping()) === "PONG";
    }, "redis-server");
    probe.disconnect();
  });
  afterAll(async () => {
    redis?.kill("SIGKILL");
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "kill -9 with 1,000 QoS 1 messages queued for an offline session: all delivered after restart, none twice",
    { timeout: 60_000 },
    async () => {
      const port = await freePort();
      const env = {
        MQTT_HOST: "127.0.0.1",
        MQTT_PORT: String(port),
        MQTT_WS_ENABLED: "off",
        HTTP_PORT: "0",
        REDIS_URL: redisUrl,
        MQTT_ANONYMOUS: "full",
        DATA_DIR: dir,
      };
      const url = `mqtt://127.0.0.1:${port}`;
      let broker = await spawnBroker(env);
      try {
        const sub = await connect(url, { clientId: "durable-sub", clean: false });
        await sub.subscribeAsync("plant/#", { qos: 1 });
        await sub.endAsync();
        const pub = await connect(url, { clientId: "pub" });
        await Promise.all(
          Array.from({ length: 1000 }, (_, i) => pub.publishAsync(`plant/line/${i % 10}`, String(i), { qos: 1 })),
        );
        await closeClient(pub);
        // Aedes sends PUBACK before the message is stored (docs/broker.md); "queued" = in Redis
        const probe = new Redis(redisUrl);
        await waitFor(async () => (await probe.llen("outgoing:durable-sub")) === 1000, "1,000 messages queued in Redis");
        probe.disconnect();
        broker.kill("SIGKILL");
        await new Promise((r) => broker.once("exit", r));
        broker = await spawnBroker(env);
        // the handler is attached before CONNACK arrives (DESIGN §9), or MQTT.js acks queued messages unseen
        const got: number[] = [];
        const again = await new Promise<import("mqtt").MqttClient>((resolve, reject) => {
          import("mqtt").then(({ default: mqtt }) => {
            const c = mqtt.connect(url, { clientId: "durable-sub", clean: false, reconnectPeriod: 0 });
            c.on("message", (_t, p) => got.push(Number(p.toString())));
            c.once("connect", (ack) => (ack.sessionPresent ? resolve(c) : reject(new Error("session lost"))));
            c.once("error", reject);
          }, reject);
        });
        await waitFor(() => got.length >= 1000, `1,000 messages (have ${got.length})`, 30_000);
        await new Promise((r) => setTimeout(r, 500));
        expect(got).toHaveLength(1000);
        expect(new Set(got).size).toBe(1000);
        await closeClient(again);
      } finally {
        broker.kill("SIGKILL");
      }
    },
  );

  it("two nodes form one cluster: a client on node A receives what is published on node B", async () => {
    const a = await startBroker({ REDIS_URL: redisUrl, MQTT_ANONYMOUS: "full", MQTT_WS_ENABLED: "off" });
    const b = await startBroker({ REDIS_URL: redisUrl, MQTT_ANONYMOUS: "full", MQTT_WS_ENABLED: "off" });
    try {
      const sub = await connect(a.url, { clientId: "on-a" });
      const got: string[] = [];
      sub.on("message", (t, p) => got.push(`${t} ${p.toString()}`));
      await sub.subscribeAsync("s1/fridge/+/telemetry", { qos: 1 });
      const pub = await connect(b.url, { clientId: "on-b" });
      await new Promise((r) => setTimeout(r, 200)); // the subscription reaches the other node through Redis
      await pub.publishAsync("s1/fridge/f1/telemetry", "t=4.1", { qos: 1 });
      await waitFor(() => got.length > 0, "cross-node delivery");
      expect(got).toEqual(["s1/fridge/f1/telemetry t=4.1"]);
      await closeClient(sub);
      await closeClient(pub);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
