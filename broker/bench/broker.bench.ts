/**
 * bench:broker — this broker (Aedes, in its own process via broker/src/main.ts) against Mosquitto on the
 * same machine, in the same run, same load generator (MQTT.js in this process):
 *   1. one publisher → one subscriber, 200-byte payloads, QoS 0 and QoS 1: delivered msg/s and loss;
 *   2. N idle connections: broker RSS per connection; then every client publishes 1 msg/s for a while:
 *      delivered msg/s at a subscriber and the broker's CPU.
 * Each broker first carries BENCH_WARMUP_N messages at QoS 0 and at QoS 1 that are not counted (JIT warm-up).
 * Figures are printed with Mosquitto ratios. Options (env): BENCH_QOS0_N, BENCH_QOS1_N, BENCH_IDLE (0 = skip
 * phase 2), BENCH_RATE_S, BENCH_BROKER_FLAGS (the broker's V8 flags; default as deployed, docker-compose.yml:
 * "--max-semi-space-size=128 --no-allocation-site-pretenuring"; "" for V8's own), BENCH_BROKER_ARGS (more node
 * flags for the broker, e.g. --cpu-prof),
 * BENCH_VARIANT ("MQTT_X=off …": also run our broker with these settings, 1→1 only, for an A/B),
 * BENCH_VARIANT_ROOT (… or the broker of another checkout, e.g. the commit before a change),
 * BENCH_PERSISTENT_SUB=1 (the QoS 1 subscriber has a persistent session, as ingest: every message through
 * its session queue), BENCH_FLEET_QOS=1 (phase 2 as bench:e2e's traffic: devices at QoS 1, a persistent
 * QoS 1 subscriber, as ingest), BENCH_VARIANT_FLEET=1 (the variant runs phase 2 too, for an A/B of it).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import mqtt, { type MqttClient } from "mqtt";
import { freePort } from "@esp-fleet/common/testing";

const QOS0_N = Number(process.env.BENCH_QOS0_N ?? 100_000);
const QOS1_N = Number(process.env.BENCH_QOS1_N ?? 40_000);
const IDLE = Number(process.env.BENCH_IDLE ?? 10_000);
const WARMUP_N = Number(process.env.BENCH_WARMUP_N ?? 20_000);
const RATE_S = Number(process.env.BENCH_RATE_S ?? 10);
const PERSISTENT_SUB = process.env.BENCH_PERSISTENT_SUB === "1";
const FLEET_QOS = process.env.BENCH_FLEET_QOS === "1" ? 1 : 0;
// BENCH_VARIANT_FLEET=1: the variant also runs phase 2 (the fleet at 1 msg/s), for an A/B of that shape
const VARIANT_FLEET = process.env.BENCH_VARIANT_FLEET === "1";
const root = new URL("../..", import.meta.url).pathname;
// as deployed (docker-compose.yml, docs/broker.md "Young generation"); the figures before the sixteenth
// session were taken with V8's own settings
const BROKER_FLAGS = (process.env.BENCH_BROKER_FLAGS ?? "--max-semi-space-size=128 --no-allocation-site-pretenuring")
  .split(" ")
  .filter(Boolean);
const payload = Buffer.alloc(200, 0x5a);

interface Target {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startOurs(overrides: Record<string, string> = {}, checkout = root): Promise<Target> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "bench-broker-"));
  // BENCH_BROKER_ARGS: extra node flags for the broker process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  const extra = (process.env.BENCH_BROKER_ARGS ?? "").split(" ").filter(Boolean);
  const child = spawn(process.execPath, [...BROKER_FLAGS, ...extra, "--import", "tsx", join(checkout, "broker/src/main.ts")], {
    cwd: checkout,
    env: {
      ...process.env,
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: String(port),
      MQTT_WS_ENABLED: "off",
      HTTP_PORT: "0",
      MQTT_ANONYMOUS: "full",
      DATA_DIR: dir,
      LOG_PRETTY: "0",
      LOG_LEVEL: "info",
      MQTT_CONNECT_TIMEOUT_MS: "60000",
      ...overrides,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await waitLine(child, '"msg":"ready"');
  return {
    name: "esp-fleet (Aedes 1.2)",
    port,
    pid: child.pid!,
    stop: () => stopChild(child).then(() => rm(dir, { recursive: true, force: true })),
  };
}

async function waitLine(child: ChildProcess, needle: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("broker did not start")), 30_000);
    createInterface({ input: child.stdout! }).on("line", (l) => {
      if (l.includes(needle)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once("exit", (c) => reject(new Error(`exited ${c}`)));
  });
}

async function startMosquitto(): Promise<Target> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "bench-mosq-"));
  const conf = join(dir, "mosquitto.conf");
  await writeFile(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\nmax_queued_messages 1000000\npersistence false\nlog_type error\n`,
  );
  const child = spawn("/usr/sbin/mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 100; i++) {
    try {
      const c = await connectOne(port, "probe");
      await c.endAsync(true);
      break;
    } catch {
      await sleep(50);
    }
  }
  return {
    name: "mosquitto",
    port,
    pid: child.pid!,
    stop: () => stopChild(child).then(() => rm(dir, { recursive: true, force: true })),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 5000).unref();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function connectOne(port: number, clientId: string, clean = true): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({
      host: "127.0.0.1",
      port,
      clientId,
      clean,
      reconnectPeriod: 0,
      connectTimeout: 60_000,
      keepalive: 0,
    });
    c.once("connect", () => resolve(c));
    c.once("error", (e) => reject(e));
  });
}

async function procStats(pid: number): Promise<{ rssKb: number; cpuTicks: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return { rssKb: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0), cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

interface OneToOne {
  rate: number;
  delivered: number;
  lost: number;
  /** CPU over the phase, % of one core: the broker process and this (load generator) process */
  brokerCpu: number;
  genCpu: number;
  /** broker CPU time per delivered message, µs: what the broker costs, less sensitive to a busy machine */
  brokerUs: number;
}

function procStatsSync(pid: number): { cpuTicks: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return { cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

async function oneToOne(t: Target, qos: 0 | 1, n: number): Promise<OneToOne> {
  const sub = await connectOne(t.port, `sub-${qos}`, !(PERSISTENT_SUB && qos > 0));
  const pub = await connectOne(t.port, `pub-${qos}`);
  await sub.subscribeAsync("bench/one", { qos });
  let got = 0;
  let last = 0;
  // CPU is read when the last message arrives, so the figures cover exactly the measured window
  let b1: { cpuTicks: number } | undefined;
  let g1: NodeJS.CpuUsage | undefined;
  sub.on("message", () => {
    got++;
    last = performance.now();
    if (got === n) {
      b1 = procStatsSync(t.pid);
      g1 = process.cpuUsage(g0);
    }
  });
  const b0 = await procStats(t.pid);
  const g0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    pub.publish("bench/one", payload, { qos });
    if (i % 500 === 499) await new Promise((r) => setImmediate(r)); // let the sockets move
  }
  const deadline = Date.now() + 30_000;
  let prev = -1;
  while (got < n && Date.now() < deadline) {
    await sleep(250);
    if (got === prev && qos === 0) break; // QoS 0 stalled: the rest is lost
    prev = got;
  }
  const secs = (last - t0) / 1000;
  const rate = got / secs;
  b1 ??= procStatsSync(t.pid); // messages were lost: the window runs to the stall check
  g1 ??= process.cpuUsage(g0);
  await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
  return {
    rate,
    delivered: got,
    lost: n - got,
    brokerCpu: ((b1.cpuTicks - b0.cpuTicks) / 100 / secs) * 100,
    brokerUs: ((b1.cpuTicks - b0.cpuTicks) * 10_000) / Math.max(1, got),
    genCpu: ((g1.user + g1.system) / 1e6 / secs) * 100,
  };
}

async function idleAndRate(
  t: Target,
  n: number,
): Promise<{
  perConnKb: number;
  rssMb: number;
  rate: number;
  offered: number;
  lost: number;
  cpuPct: number;
  brokerUs: number;
  connected: number;
}> {
  const before = await procStats(t.pid);
  const clients: MqttClient[] = [];
  for (let i = 0; i < n; i += 250) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(250, n - i) }, (_, k) => connectOne(t.port, `idle-${i + k}`)),
    );
    for (const r of batch) if (r.status === "fulfilled") clients.push(r.value);
  }
  await sleep(2000);
  const after = await procStats(t.pid);
  const perConnKb = (after.rssKb - before.rssKb) / clients.length;
  // BENCH_FLEET_QOS=1: as bench:e2e's traffic — devices publish at QoS 1, and the subscriber has a
  // persistent QoS 1 session, as ingest (every message through its session queue, each acknowledged)
  const sub = await connectOne(t.port, "rate-sub", FLEET_QOS === 0);
  let got = 0;
  sub.on("message", () => got++);
  await sub.subscribeAsync("bench/+/telemetry", { qos: FLEET_QOS });
  const c0 = await procStats(t.pid);
  const t0 = performance.now();
  let offered = 0;
  // every client publishes once a second, spread evenly over the second
  const perTick = Math.ceil(clients.length / 20);
  for (let s = 0; s < RATE_S * 20; s++) {
    const tickStart = performance.now();
    for (let k = 0; k < perTick; k++) {
      const c = clients[(s * perTick + k) % clients.length]!;
      c.publish(`bench/${c.options.clientId}/telemetry`, payload, { qos: FLEET_QOS });
      offered++;
    }
    await sleep(Math.max(0, 50 - (performance.now() - tickStart)));
  }
  await sleep(1000);
  const secs = (performance.now() - t0) / 1000;
  const c1 = await procStats(t.pid);
  const cpuPct = ((c1.cpuTicks - c0.cpuTicks) / 100 / secs) * 100;
  await Promise.all([...clients, sub].map((c) => c.endAsync(true)));
  // brokerUs: broker CPU per delivered message (over the phase and its 1 s tail)
  const brokerUs = ((c1.cpuTicks - c0.cpuTicks) * 1e4) / Math.max(1, got);
  const lost = offered - got;
  return {
    perConnKb,
    rssMb: after.rssKb / 1024,
    rate: got / (secs - 1),
    offered,
    lost,
    cpuPct,
    brokerUs,
    connected: clients.length,
  };
}

async function measure(start: () => Promise<Target>, idleN = IDLE) {
  const t = await start();
  try {
    // Warm-up, not counted: a running broker has its hot path compiled; without this a 1-second phase
    // also measures V8 compiling Aedes (Mosquitto, in C, is unaffected either way).
    await oneToOne(t, 0, WARMUP_N);
    await oneToOne(t, 1, WARMUP_N);
    const qos0 = await oneToOne(t, 0, QOS0_N);
    const qos1 = await oneToOne(t, 1, QOS1_N);
    const idle = idleN > 0 ? await idleAndRate(t, idleN) : undefined; // BENCH_IDLE=0: the 1→1 phases only
    return { name: t.name, qos0, qos1, idle };
  } finally {
    await t.stop();
  }
}

const t0 = Date.now();
const load = (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
// BENCH_VARIANT="MQTT_X=off …": also measure (1→1 only) our broker with these settings, for an A/B in one run
const variantEnv = Object.fromEntries(
  (process.env.BENCH_VARIANT ?? "")
    .split(" ")
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);
// BENCH_VARIANT_ROOT=/path: … or the broker of another checkout (e.g. `git archive <commit>` + node_modules link)
const variantRoot = process.env.BENCH_VARIANT_ROOT;
const variant =
  process.env.BENCH_VARIANT || variantRoot
    ? await measure(() => startOurs(variantEnv, variantRoot ?? root), VARIANT_FLEET ? IDLE : 0)
    : undefined;
const ours = await measure(() => startOurs());
const mosq = await measure(startMosquitto);
const f = (v: number, d = 0) => v.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const cpu = (r: OneToOne) => `${f(r.brokerCpu)} / ${f(r.genCpu)}`;
const us = (r: OneToOne) => f(r.brokerUs, 1);
const rows = [
  ["QoS 0 1→1 delivered msg/s", f(ours.qos0.rate), f(mosq.qos0.rate), ratio(ours.qos0.rate, mosq.qos0.rate)],
  ["QoS 0 lost", `${ours.qos0.lost}/${QOS0_N}`, `${mosq.qos0.lost}/${QOS0_N}`, ""],
  ["  CPU % broker / generator", cpu(ours.qos0), cpu(mosq.qos0), ""],
  ["  broker CPU µs per delivered msg", us(ours.qos0), us(mosq.qos0), ratio(ours.qos0.brokerUs, mosq.qos0.brokerUs)],
  ["QoS 1 1→1 delivered msg/s", f(ours.qos1.rate), f(mosq.qos1.rate), ratio(ours.qos1.rate, mosq.qos1.rate)],
  ["QoS 1 lost", `${ours.qos1.lost}/${QOS1_N}`, `${mosq.qos1.lost}/${QOS1_N}`, ""],
  ["  CPU % broker / generator", cpu(ours.qos1), cpu(mosq.qos1), ""],
  ["  broker CPU µs per delivered msg", us(ours.qos1), us(mosq.qos1), ratio(ours.qos1.brokerUs, mosq.qos1.brokerUs)],
];
if (variant)
  rows.push(
    [`variant ${process.env.BENCH_VARIANT ?? ""} ${variantRoot ?? ""}:`, "", "", ""],
    ["  QoS 0 1→1 delivered msg/s", f(variant.qos0.rate), f(mosq.qos0.rate), ratio(variant.qos0.rate, mosq.qos0.rate)],
    ["  QoS 0 lost", `${variant.qos0.lost}/${QOS0_N}`, "", ""],
    ["  CPU % broker / generator", cpu(variant.qos0), "", ""],
    ["  broker CPU µs per delivered msg", us(variant.qos0), "", ""],
    ["  QoS 1 1→1 delivered msg/s", f(variant.qos1.rate), f(mosq.qos1.rate), ratio(variant.qos1.rate, mosq.qos1.rate)],
    ["  QoS 1 lost", `${variant.qos1.lost}/${QOS1_N}`, "", ""],
    ["  CPU % broker / generator", cpu(variant.qos1), "", ""],
    ["  broker CPU µs per delivered msg", us(variant.qos1), "", ""],
  );
if (ours.idle && mosq.idle)
  rows.push(
    [`idle connections held`, String(ours.idle.connected), String(mosq.idle.connected), ""],
    [
      "RSS per idle connection (KB)",
      f(ours.idle.perConnKb, 1),
      f(mosq.idle.perConnKb, 1),
      ratio(ours.idle.perConnKb, mosq.idle.perConnKb),
    ],
    ["broker RSS with them (MB)", f(ours.idle.rssMb), f(mosq.idle.rssMb), ""],
    [
      `${IDLE} clients @1 msg/s QoS ${FLEET_QOS}: delivered msg/s`,
      f(ours.idle.rate),
      f(mosq.idle.rate),
      ratio(ours.idle.rate, mosq.idle.rate),
    ],
    ["  not delivered", `${ours.idle.lost}/${ours.idle.offered}`, `${mosq.idle.lost}/${mosq.idle.offered}`, ""],
    ["  broker CPU during it (% of one core)", f(ours.idle.cpuPct), f(mosq.idle.cpuPct), ""],
    [
      "  broker CPU µs per delivered msg",
      f(ours.idle.brokerUs, 1),
      f(mosq.idle.brokerUs, 1),
      ratio(ours.idle.brokerUs, mosq.idle.brokerUs),
    ],
  );
if (variant?.idle && mosq.idle)
  rows.push(
    [
      `variant, ${IDLE} clients @1 msg/s QoS ${FLEET_QOS}`,
      f(variant.idle.rate),
      f(mosq.idle.rate),
      ratio(variant.idle.rate, mosq.idle.rate),
    ],
    ["  not delivered", `${variant.idle.lost}/${variant.idle.offered}`, "", ""],
    [
      "  RSS per idle connection (KB)",
      f(variant.idle.perConnKb, 1),
      f(mosq.idle.perConnKb, 1),
      ratio(variant.idle.perConnKb, mosq.idle.perConnKb),
    ],
    ["  broker CPU during it (% of one core)", f(variant.idle.cpuPct), "", ""],
    ["  broker CPU µs per delivered msg", f(variant.idle.brokerUs, 1), "", ratio(variant.idle.brokerUs, mosq.idle.brokerUs)],
  );
const width = [40, 14, 14, 8];
const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join(" ");
process.stdout.write(
  `bench:broker — broker flags "${BROKER_FLAGS.join(" ")}"; load average at start ${load}; ${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
);
process.stdout.write(`${line(["", "esp-fleet", "mosquitto", "ratio"])}\n`);
for (const r of rows) process.stdout.write(`${line(r)}\n`);
process.stdout.write(`load average at end ${(await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ")}\n`);
