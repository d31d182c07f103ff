/**
 * `npm run bench:emulator` — devices per process against a broker on the same machine.
 *
 * Three processes, measured separately: the broker (Mosquitto, or a plain Aedes child with
 * `--broker aedes`), the emulator (`emulator-child.ts`: N devices, one MQTT.js session each, nothing
 * else) and this orchestrator (a QoS 1 subscriber on every telemetry topic that counts what arrives).
 * After all devices are online and the fleet has settled (≥ 3 s, then until three consecutive seconds
 * ran at the nominal pace ±3 % with timers less than 100 ms late — the backlog of the connection storm
 * is worked off — at most 60 s more), a window of `--duration` seconds is measured:
 * emulator CPU % (of one core), RSS per device, p99 event-loop lag, messages/s; the broker's CPU and RSS
 * from /proc. Then the fleet stops cleanly and loss = readings produced − readings received.
 *
 * Flags: --devices N (10000) --duration S (60) --kind fridge (or e.g. fridge,sqal) --interval MS (1000)
 *        --broker mosquitto|aedes (mosquitto when installed) --ramp MS (1 ms per device)
 *        --client session|mqttjs: the devices' MQTT client (default session, as `esp-fleet emulate`)
 *        --bare: the baseline — plain MQTT.js clients with the same session options publishing a
 *        pre-encoded reading at the same rate, no firmware (to separate MQTT.js's cost from ours)
 *        --node-flags=…: Node/V8 options for the emulator process, e.g. --node-flags=--max-semi-space-size=2 (with "=": the value starts with a dash)
 *        --broker-profile DIR: the same for the Aedes broker child (with --broker aedes)
 *        --profile DIR: write a V8 CPU profile of the emulator process into DIR (`--cpu-prof`; the
 *        profiler's own cost inflates the CPU figure — use it for shares, not for the target)
 * Run under `flock /tmp/bench.lock npm run bench:emulator -- …` so benchmarks never overlap.
 */
import { parseArgs } from "node:util";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { freePort } from "@esp-fleet/common/testing";
import { filters } from "@esp-fleet/schemas";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p));

// node:util parseArgs: `--name value` and `--name=value` both work, and an unknown flag is an error
// (a hand-rolled lookup silently ignored `--node-flags=…`).
const { values: args } = parseArgs({
  options: {
    devices: { type: "string" },
    duration: { type: "string" },
    kind: { type: "string" },
    interval: { type: "string" },
    broker: { type: "string" },
    ramp: { type: "string" },
    profile: { type: "string" },
    "broker-profile": { type: "string" },
    "node-flags": { type: "string" },
    bare: { type: "boolean" },
    client: { type: "string" },
  },
});

function flag(name: Exclude<keyof typeof args, "bare">, def: string): string {
  return args[name] || def;
}

const devices = Number(flag("devices", "10000"));
const durationS = Number(flag("duration", "60"));
const kinds = flag("kind", "fridge").split(",");
const intervalMs = Number(flag("interval", "1000"));
const brokerKind = flag("broker", MOSQUITTO ? "mosquitto" : "aedes");
const rampMs = Number(flag("ramp", String(devices * 1)));
const mode = args.bare ? "bare" : "fleet";
const mqttClient = flag("client", "session");
if (mqttClient !== "session" && mqttClient !== "mqttjs") throw new Error(`--client must be session or mqttjs, got ${mqttClient}`);
const profileDir = flag("profile", "");
const brokerProfileDir = flag("broker-profile", "");
const nodeFlags = flag("node-flags", "").split(" ").filter(Boolean);

function procStats(pid: number): { cpuS: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  return { cpuS: ticks / 100, rss: rssKb * 1024 };
}

function lines(child: ChildProcess, on: (tag: string, data: Record<string, number | string>) => void): void {
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    const sp = line.indexOf(" ");
    if (sp < 0) return;
    try {
      on(line.slice(0, sp), JSON.parse(line.slice(sp + 1)) as Record<string, number | string>);
    } catch {
      // not a protocol line
    }
  });
}

async function startBroker(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  if (brokerKind === "mosquitto") {
    if (!MOSQUITTO) throw new Error("mosquitto not installed; use --broker aedes");
    const dir = mkdtempSync(join(tmpdir(), "bench-mosq-"));
    const conf = join(dir, "m.conf");
    writeFileSync(
      conf,
      `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n`,
    );
    const proc = spawn(MOSQUITTO, ["-c", conf], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 500));
    return {
      url: `mqtt://127.0.0.1:${port}`,
      pid: proc.pid as number,
      async stop() {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const prof = brokerProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${brokerProfileDir}`] : [];
  const proc = spawn(process.execPath, [...prof, "--import", "tsx", join(HERE, "broker-child.ts"), String(port)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve) => lines(proc, (tag) => tag === "READY" && resolve()));
  return {
    url: `mqtt://127.0.0.1:${port}`,
    pid: proc.pid as number,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    },
  };
}

const broker = await startBroker();
process.stderr.write(
  `broker: ${brokerKind} on ${broker.url}; ${devices} devices (${kinds.join(",")}), ${intervalMs} ms interval, ${durationS} s window\n`,
);

// The counting subscriber (QoS 1, so the broker queues rather than drops for it).
let received = 0;
const sub = mqtt.connect(broker.url, { clientId: "bench-counter", clean: true, reconnectPeriod: 500 });
sub.on("message", () => {
  received++;
});
await new Promise<void>((resolve, reject) => {
  sub.once("connect", () => sub.subscribe(filters.telemetry(), { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  sub.once("error", reject);
});

const child = spawn(
  process.execPath,
  [
    ...nodeFlags,
    ...(profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : []),
    "--import",
    "tsx",
    join(HERE, "emulator-child.ts"),
    JSON.stringify({ url: broker.url, devices, kinds, windowS: durationS, intervalMs, rampMs, seed: 1, mode, mqttClient }),
  ],
  { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, LOG_LEVEL: "warn" } },
);
const load0 = loadavg()[0] as number;
let windowStart: { recv: number; broker: { cpuS: number; rss: number }; at: number } | undefined;
let windowEnd: Record<string, number | string> | undefined;
let recvInWindow = 0;
let brokerWindow: { cpuPct: number; rss: number } | undefined;
let done: Record<string, number | string> | undefined;
let failed: string | undefined;
await new Promise<void>((resolve) => {
  lines(child, (tag, d) => {
    if (tag === "PROGRESS") process.stderr.write(`  ramp ${Math.round(Number(d.t) / 1000)} s: online ${d.online}/${devices}\n`);
    else if (tag === "SETTLE") process.stderr.write(`  settling: ${d.readingsPerS} readings/s, timers ${d.lagMs} ms late\n`);
    else if (tag === "WINDOW_START") {
      windowStart = { recv: received, broker: procStats(broker.pid), at: performance.now() };
      process.stderr.write(`  all online after ${Math.round(Number(d.rampMs) / 1000)} s; measuring ${durationS} s …\n`);
    } else if (tag === "WINDOW_END" && windowStart) {
      windowEnd = d;
      recvInWindow = received - windowStart.recv;
      const b = procStats(broker.pid);
      brokerWindow = {
        cpuPct: ((b.cpuS - windowStart.broker.cpuS) / ((performance.now() - windowStart.at) / 1000)) * 100,
        rss: b.rss,
      };
    } else if (tag === "DONE") done = d;
    else if (tag === "FAIL") failed = String(d.reason);
  });
  child.once("exit", () => resolve());
});

// Drain: wait until everything produced has arrived (or nothing more arrives for 10 s).
if (done) {
  const target = Number(done.readings);
  let last = -1;
  let still = Date.now();
  while (received < target && Date.now() - still < 10_000) {
    await new Promise((r) => setTimeout(r, 250));
    if (received !== last) {
      last = received;
      still = Date.now();
    }
  }
}
const load1 = loadavg()[0] as number;
await new Promise<void>((r) => sub.end(true, () => r()));
await broker.stop();

if (failed || !windowEnd || !done || !brokerWindow) {
  process.stderr.write(`bench failed: ${failed ?? "emulator ended early"}\n`);
  process.exit(1);
}
const w = windowEnd;
const wallS = Number(w.wallMs) / 1000;
const produced = Number(done.readings);
const loss = produced - received;
const result = {
  mode: mode === "bare" ? "bare MQTT.js clients (baseline)" : `emulated devices (${mqttClient} client)`,
  broker: brokerKind,
  devices,
  kinds: kinds.join(","),
  window_s: Math.round(wallS),
  msgs_per_s_sent: Math.round(Number(w.sent) / wallS),
  telemetry_per_s: Math.round(Number(w.readings) / wallS),
  received_per_s: Math.round(recvInWindow / wallS),
  produced_total: produced,
  received_total: received,
  loss,
  emulator_cpu_pct: Math.round(Number(w.cpuPct) * 10) / 10,
  emulator_rss_mb: Math.round(Number(w.rss) / 1048576),
  rss_kb_per_device: Math.round((Number(w.rss) / 1024 / devices) * 10) / 10,
  rss_kb_per_device_incremental: Math.round(((Number(w.rss) - Number(w.rssBefore)) / 1024 / devices) * 10) / 10,
  heap_used_mb: Math.round(Number(w.heapUsed) / 1048576),
  heap_total_mb: Math.round(Number(w.heapTotal) / 1048576),
  array_buffers_mb: Math.round(Number(w.arrayBuffers) / 1048576),
  eld_p99_ms: Math.round(Number(w.eldP99Ms) * 10) / 10,
  eld_max_ms: Math.round(Number(w.eldMaxMs) * 10) / 10,
  reconnects_in_window: Number(w.reconnects),
  dropped: Number(done.dropped),
  broker_cpu_pct: Math.round(brokerWindow.cpuPct * 10) / 10,
  broker_rss_mb: Math.round(brokerWindow.rss / 1048576),
  load_avg_1m: `${load0.toFixed(1)} → ${load1.toFixed(1)}`,
  node_flags: nodeFlags.join(" "),
  heap_growth_percent: w.heapGrowthPercent,
  gc_pause_ms_in_window: Object.fromEntries(
    Object.entries(w.gcMs as unknown as Record<string, number | string>).map(([k, v]) => [
      k,
      typeof v === "number" ? Math.round(v * 10) / 10 : v,
    ]),
  ),
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
const pass = loss === 0 && result.emulator_cpu_pct <= 75 && result.rss_kb_per_device <= 60 && result.eld_p99_ms < 50;
process.stdout.write(`target (zero loss, ≤ 75 % of a core, ≤ 60 KB/device, p99 lag < 50 ms): ${pass ? "MET" : "NOT MET"}\n`);
process.exit(0);
