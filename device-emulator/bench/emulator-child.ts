/**
 * The measured process of `bench:emulator`: a fleet of N devices (one MQTT.js session each) in this
 * process, nothing else. Protocol on stdout, one line each:
 *   PROGRESS {…}      every second while ramping up
 *   SETTLED {…}       (with `goOnStdin`) the fleet is at its pace; waits for a line `GO` on stdin
 *   WINDOW_START {…}  all devices online; measurement starts
 *   WINDOW_END {…}    after the window: CPU %, RSS, event-loop lag p99, messages sent
 *   DONE {…}          after a clean stop: total telemetry readings produced
 * Usage: tsx device-emulator/bench/emulator-child.ts '<json options>'
 */
// first, as in the CLI: mqtt-packet with quiet loggers (common/src/quiet-debug.ts)
import "@esp-fleet/common/quiet-debug";
// one write() per MQTT packet (common/src/packet-writes.ts)
import "@esp-fleet/common/packet-writes";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { watchGc } from "@esp-fleet/common/gc-watch";
import mqtt, { type MqttClient } from "mqtt";
import { deviceTopic, encodeCbor, type DeviceKind } from "@esp-fleet/schemas";
import { loadEmulatorConfig } from "../src/config.ts";
import { tuneHeapGrowth } from "../src/heap.ts";
import { heapSampleFromEnv } from "@esp-fleet/common/heap-sample";
import { startFleet, fleetSpecs, type Fleet, type FleetStats } from "../src/fleet.ts";

interface ChildOptions {
  url: string;
  devices: number;
  kinds: DeviceKind[];
  windowS: number;
  intervalMs: number;
  rampMs: number;
  seed: number;
  /** Start the window only when the parent writes `GO` on stdin (bench:e2e waits until the pipeline
   * behind the broker has worked off the connection storm), at most 120 s after settling. */
  goOnStdin?: boolean;
  /** "bare": plain MQTT.js clients doing the same publishing (the baseline), no firmware. */
  mode?: "fleet" | "bare";
  /** The devices' MQTT client (default session, as `esp-fleet emulate`). */
  mqttClient?: "session" | "mqttjs";
}

interface Runner {
  /** How late the latest timer batch ran, wall ms (0 when unknown). */
  lagMs(): number;
  /** How many devices are in each state other than online (the fleet only). */
  states?(): Record<string, number>;
  stats(): Pick<
    FleetStats,
    "online" | "sent" | "readings" | "reconnects" | "dropped" | "buffered" | "publishErrors" | "errors"
  > & {
    unacked?: number;
  };
  stop(): Promise<void>;
}

/** The baseline: one MQTT.js client per device with the same session options, publishing a pre-encoded
 * fridge-sized CBOR payload once per interval from one shared 10 ms tick. */
function startBare(): Runner {
  const specs = fleetSpecs(o.devices, o.kinds, ["LL", "LS", "MT"]);
  const payload = encodeCbor({
    v: 1,
    dev: "FRIDGE_LL_01",
    boot: 1,
    seq: 5,
    ts: Date.now(),
    t: 5.12,
    t_evap: -3.2,
    p_lo: 2.5,
    p_hi: 12.1,
    i_comp: 15.2,
    v_sup: 380.1,
    vib: 0.52,
    rh: 65.2,
    flow: 100.3,
    door: false,
    comp: true,
    defrost: false,
    sim: { fault: null },
  });
  let online = 0;
  let sent = 0;
  const clients: { c: MqttClient; topic: string }[] = [];
  specs.forEach((spec, i) => {
    setTimeout(
      () => {
        const c = mqtt.connect(o.url, {
          clientId: spec.dev,
          clean: false,
          reconnectPeriod: 0,
          keepalive: 30,
          will: { topic: deviceTopic(spec, "status"), payload, qos: 1, retain: true },
        });
        c.on("connect", () => {
          online++;
          c.subscribe(`${spec.site}/${spec.kind}/${spec.dev}/cmd/+`, { qos: 1 });
        });
        c.on("close", () => online--);
        c.on("error", () => undefined);
        clients.push({ c, topic: deviceTopic(spec, "telemetry") });
      },
      (o.rampMs * i) / specs.length,
    );
  });
  const opts = { qos: 1 as const, retain: false };
  let next = 0;
  const perTick = Math.max(1, Math.round((o.devices * 10) / o.intervalMs));
  const tick = setInterval(() => {
    for (let k = 0; k < perTick && clients.length > 0; k++) {
      const d = clients[next++ % clients.length] as { c: MqttClient; topic: string };
      if (d.c.connected) {
        d.c.publish(d.topic, payload, opts);
        sent++;
      }
    }
  }, 10);
  return {
    lagMs: () => 0,
    stats: () => ({
      online,
      sent,
      readings: sent,
      reconnects: 0,
      dropped: 0,
      buffered: 0,
      publishErrors: 0,
      errors: 0,
    }),
    stop: async () => {
      clearInterval(tick);
      await Promise.all(clients.map((d) => d.c.endAsync(false)));
    },
  };
}

function withLag(fleet: Fleet): Runner {
  // (`?? 0`: the A/B runs against the previous scheduler, which has no lagMs, settle on pace alone)
  return {
    states: () => {
      const n: Record<string, number> = {};
      for (const d of fleet.devices) if (d.state !== "online") n[d.state] = (n[d.state] ?? 0) + 1;
      return n;
    },
    lagMs: () => (fleet.scheduler as { lagMs?: number }).lagMs ?? 0,
    stats: () => fleet.stats(),
    stop: () => fleet.stop(),
  };
}

const o = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
const emit = (tag: string, data: Record<string, unknown>) => process.stdout.write(`${tag} ${JSON.stringify(data)}\n`);

// BENCH_HEARTBEAT_MS (diagnosis): the devices' heartbeat period instead of the firmware's default
const heartbeatEnv = process.env.BENCH_HEARTBEAT_MS;
const heartbeatMs = heartbeatEnv === undefined || heartbeatEnv === "" ? undefined : Number(heartbeatEnv);
if (heartbeatMs !== undefined && !(Number.isInteger(heartbeatMs) && heartbeatMs > 0)) {
  emit("FAIL", { reason: `BENCH_HEARTBEAT_MS must be a whole number of milliseconds > 0, not "${heartbeatEnv}"` });
  process.exit(2);
}

// The fleet runs as `esp-fleet emulate` runs it: same heap tuning (EMULATOR_HEAP_GROWTH_PERCENT); the bare
// baseline is plain MQTT.js with V8's defaults. (The fleet is the default mode: bench:e2e passes none, and
// until the sixteenth session its fleet ran untuned — V8's own growth, a full collection every ~20–35 s.)
const heapGrowthPercent = loadEmulatorConfig().EMULATOR_HEAP_GROWTH_PERCENT;
const heapTuned = o.mode !== "bare" && tuneHeapGrowth(heapGrowthPercent);
const rssBefore = process.memoryUsage().rss;
// BENCH_EMULATOR_HEAP_SAMPLE=<file>:<from s>:<to s>[:all] (diagnosis): V8's sampling heap profile from <from>
// to <to> seconds after the fleet starts (common/src/heap-sample.ts)
await heapSampleFromEnv("BENCH_EMULATOR_HEAP_SAMPLE", "emulator child");
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
const t0 = Date.now();
const fleet: Runner =
  o.mode === "bare"
    ? startBare()
    : withLag(
        await startFleet({
          url: o.url,
          devices: o.devices,
          kinds: o.kinds,
          mqttClient: o.mqttClient,
          seed: o.seed,
          intervalMs: o.intervalMs,
          faultProb: 0.1,
          rampMs: o.rampMs,
          connectTimeoutMs: 30_000,
          // Stopping the fleet waits up to a minute for the broker to acknowledge what is in flight, so that
          // an overloaded run's loss is the pipeline's, not the stop's (`unacked` counts what is left).
          closeTimeoutMs: 60_000,
          firmware: {
            backoffMinMs: 2000,
            backoffMaxMs: 30_000,
            watchdogMs: 0,
            ...(heartbeatMs !== undefined ? { heartbeatMs } : {}),
          },
        }),
      );
process.on("SIGTERM", () => void fleet.stop().then(() => process.exit(0)));
for (;;) {
  await new Promise((r) => setTimeout(r, 1000));
  const s = fleet.stats();
  emit("PROGRESS", { t: Date.now() - t0, online: s.online, ...fleet.states?.(), sent: s.sent, reconnects: s.reconnects });
  if (s.online === o.devices) break;
  if (Date.now() - t0 > 120_000) {
    emit("FAIL", { reason: `only ${s.online}/${o.devices} online after 120 s` });
    process.exit(1);
  }
}
// Let the connection storm settle before measuring: at least 3 s, then until three consecutive seconds
// had readings within ±3 % of the nominal pace AND timers firing less than 100 ms late (readings that
// fell due during the storm are worked off: a device fires each late reading, so a backlog shows as a
// pace above nominal while the lag shrinks), at most 60 s more. The window measures the steady state.
await new Promise((r) => setTimeout(r, 3000));
const nominalPerS = (o.devices * 1000) / o.intervalMs;
for (let i = 0, ok = 0, prev = fleet.stats().readings; i < 60 && ok < 3; i++) {
  await new Promise((r) => setTimeout(r, 1000));
  const now = fleet.stats().readings;
  const lagMs = fleet.lagMs();
  emit("SETTLE", { readingsPerS: now - prev, lagMs });
  ok = Math.abs(now - prev - nominalPerS) <= nominalPerS * 0.03 && lagMs < 100 ? ok + 1 : 0;
  prev = now;
}
if (o.goOnStdin) {
  const settledAt = Date.now();
  emit("SETTLED", { t: settledAt - t0 });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 120_000);
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (d: string) => {
      if (d.includes("GO")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  process.stdin.pause();
}
const startStats = fleet.stats();
const cpu0 = process.cpuUsage();
const w0 = performance.now();
eld.reset();
emit("WINDOW_START", { rampMs: Date.now() - t0, sent: startStats.sent, readings: startStats.readings });
// GC pauses on the main thread in the window, by kind (common/src/gc-watch.ts)
const gc = watchGc();
let rssMax = 0;
const sampler = setInterval(() => {
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
}, 1000);
await new Promise((r) => setTimeout(r, o.windowS * 1000));
clearInterval(sampler);
const gcMs = gc.take();
gc.stop();
const cpu = process.cpuUsage(cpu0);
const wallMs = performance.now() - w0;
const endStats = fleet.stats();
const mem = process.memoryUsage();
rssMax = Math.max(rssMax, mem.rss);
emit("WINDOW_END", {
  wallMs,
  heapGrowthPercent: heapTuned ? heapGrowthPercent : 0,
  gcMs,
  cpuPct: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
  rss: mem.rss,
  rssMax,
  rssBefore,
  heapUsed: mem.heapUsed,
  heapTotal: mem.heapTotal,
  external: mem.external,
  arrayBuffers: mem.arrayBuffers,
  eldP99Ms: eld.percentile(99) / 1e6,
  eldMaxMs: eld.max / 1e6,
  sent: endStats.sent - startStats.sent,
  readings: endStats.readings - startStats.readings,
  online: endStats.online,
  reconnects: endStats.reconnects - startStats.reconnects,
  dropped: endStats.dropped,
  buffered: endStats.buffered,
  publishErrors: endStats.publishErrors,
  errors: endStats.errors,
});
// devices not connected when the fleet is stopped: their buffered readings never leave
const notOnline = o.devices - fleet.stats().online;
await fleet.stop();
const fin = fleet.stats();
emit("DONE", {
  readings: fin.readings,
  sent: fin.sent,
  dropped: fin.dropped,
  buffered: fin.buffered,
  notOnline,
  // QoS 1 messages sessions still held unacknowledged when they closed (after the minute above): never
  // confirmed to their device, so possibly never received by the broker
  unacked: fin.unacked ?? "?",
  reconnects: fin.reconnects,
});
process.exit(0);
