/**
 * bench:queue — what an offline persistent session's queue costs in this broker (in-memory backend, in
 * this process): N readings (250-byte payloads, QoS 1, 10,000 device topics) are queued for a session that
 * has gone away; printed are the heap and buffer memory per queued message (after a full GC) and the
 * process's growth, then how fast the queue is replayed when the session comes back, and in how many
 * event-loop turns (Aedes's own replay wrote one queued message per turn; the broker's writes up to 256 —
 * broker/src/replay.ts, docs/broker.md "Durability"). The receiver is an MQTT.js client in this process.
 * With BENCH_LOAD=K, K more clients (in this process) publish a QoS 1 reading a second each to topics the
 * session also takes, from 2 s before it comes back until its queue is replayed: the replay under live
 * traffic, as when ingest restarts while the fleet publishes.
 * Usage: flock /tmp/bench.lock npm run bench:queue [-- N]   (default 200,000, MQTT_MAX_QUEUED_MESSAGES_SERVICE)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import mqtt, { type MqttClient } from "mqtt";
import { silentLogger } from "@esp-fleet/common/logger";
import { createBroker } from "../src/broker.ts";
import { loadBrokerConfig } from "../src/config.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const N = Number(process.argv[2] ?? 200_000);
const dir = await mkdtemp(join(tmpdir(), "bench-queue-"));
const broker = await createBroker(
  loadBrokerConfig({
    MQTT_HOST: "127.0.0.1",
    MQTT_PORT: "0",
    MQTT_WS_PORT: "0",
    DATA_DIR: dir,
    MQTT_ANONYMOUS: "full",
    MQTT_MAX_QUEUED_MESSAGES: "0",
  }),
  { logger: silentLogger() },
);
await broker.start();
const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`;
const connect = (opts: mqtt.IClientOptions) =>
  new Promise<MqttClient>((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, ...opts });
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });

const session = await connect({ clientId: "bench-ingest", clean: false });
await session.subscribeAsync("+/fridge/+/telemetry", { qos: 1 });
await session.endAsync();
const publisher = await connect({ clientId: "bench-publisher" });
const payload = Buffer.alloc(250, 7);
gc();
const before = process.memoryUsage();
for (let i = 0; i < N; i += 5000) {
  const n = Math.min(5000, N - i);
  await Promise.all(
    Array.from({ length: n }, (_, k) =>
      publisher.publishAsync(`LL/fridge/FRIDGE_LL_${(i + k) % 10_000}/telemetry`, payload, { qos: 1 }),
    ),
  );
  process.stdout.write(`\r  queued ${i + n} of ${N}`);
}
await new Promise((r) => setTimeout(r, 500));
gc();
const after = process.memoryUsage();
const heapAndBuffers = after.heapUsed - before.heapUsed + (after.external - before.external);
console.log(
  `\nqueued ${N}: heap + buffers ${(heapAndBuffers / 1e6).toFixed(1)} MB (${Math.round(heapAndBuffers / N)} B per message), ` +
    `process grew ${((after.rss - before.rss) / 1e6).toFixed(1)} MB`,
);

// live traffic (BENCH_LOAD): K clients, one QoS 1 reading a second each, 4-byte payloads
const LOAD = Number(process.env.BENCH_LOAD ?? 0);
const live = await Promise.all(Array.from({ length: LOAD }, (_, i) => connect({ clientId: `bench-live-${i}` })));
let liveSent = 0;
const liveTimers = live.map((c, i) =>
  setTimeout(
    () => {
      const timer = setInterval(() => {
        liveSent++;
        c.publish(`LL/fridge/LIVE_${i}/telemetry`, "live", { qos: 1 });
      }, 1000);
      liveTimers[i] = timer;
    },
    (i * 1000) / Math.max(1, LOAD),
  ),
);
if (LOAD > 0) {
  await new Promise((r) => setTimeout(r, 2000));
  console.log(`live load: ${LOAD} clients at 1 reading/s each`);
}

let turns = 0;
let counting = true;
const tick = () => {
  turns++;
  if (counting) setImmediate(tick);
};
let got = 0;
let liveGot = 0;
const liveSentBefore = liveSent;
const t0 = performance.now();
setImmediate(tick);
const back = mqtt.connect(url, { clientId: "bench-ingest", clean: false, reconnectPeriod: 0 });
await new Promise<void>((resolve) =>
  back.on("message", (_topic, payload) => {
    if (payload.length !== 250) liveGot++;
    else if (++got === N) resolve();
  }),
);
counting = false;
const ms = performance.now() - t0;
console.log(
  `replayed ${N} in ${(ms / 1000).toFixed(2)} s (${Math.round((N / ms) * 1000)} msg/s) over ${turns} event-loop turns (${(N / turns).toFixed(2)} per turn)` +
    (LOAD > 0 ? `; meanwhile ${liveSent - liveSentBefore} live readings sent, ${liveGot} received by the session` : ""),
);
for (const t of liveTimers) clearInterval(t); // a timeout not yet fired, or the interval it started
await Promise.all(live.map((c) => c.endAsync()));
await back.endAsync();
await publisher.endAsync();
await broker.stop();
await rm(dir, { recursive: true, force: true });
