/**
 * bench:e2e — emulator → broker → ingest → PostgreSQL on this machine, QoS 1 all the way:
 *   - broker: the emulator package's in-memory Aedes child (device-emulator/bench/broker-child.ts),
 *   - devices: the emulator package's fleet child (device-emulator/bench/emulator-child.ts), N devices,
 *     one MQTT session each (the emulator's default client, EMULATOR_MQTT_CLIENT), firmware-style (birth/meta/heartbeat/telemetry at `--interval`),
 *   - ingest: this process (createIngest, persistent session, ack after commit),
 *   - PostgreSQL: a fresh database on TEST_DATABASE_URL (default the local server), dropped at the end.
 * Measures, over the steady window — it starts when the fleet is at its pace and the connection storm's
 * backlog is worked off (broker queue and ingest's uncommitted messages under one second of readings for
 * 3 s; at most 120 s after the fleet settles; the time it took is printed): readings committed per second, publish→commit latency
 * (device ts → commit; same clock), the CPU of the emulator, broker, ingest and a local PostgreSQL and the
 * machine's busy time, and after the fleet stops, loss = readings produced − rows stored.
 * `--harness lean` replaces the emulator fleet by ingest/bench/lean-publisher-child.ts: the same device
 * messages from N device ids multiplexed over `--connections` MQTT connections (no per-device sessions).
 * Usage: flock /tmp/bench.lock npm run bench:e2e [-- --devices 10000 --window 60 --kinds fridge --harness emulator|lean] [--batch 2000 --max-pending 50000: ingest's batch and its limit of uncommitted messages; --max-in-flight N: its batches committing at once]
 *        [--broker-profile DIR, --emulator-profile DIR: a V8 CPU profile of the broker or the fleet child; of ingest: node --cpu-prof --import tsx ingest/bench/e2e.bench.ts] [--broker-flags="…": its node flags; default as deployed, "--max-semi-space-size=128 --no-allocation-site-pretenuring"]
 *        [--emulator-nice N: the fleet under nice(1)] [--emulator-flags="…": the fleet child's node flags, e.g. "--trace-gc"]; BENCH_TRACE=1: each second of the window on a line (CPU per process, backlog); the broker child takes MQTT_CONCURRENCY, MQTT_ACCEPT_HANDLES, MQTT_DRAIN_TIMEOUT_MS,
 *        MQTT_WRITE_HIGH_WATER_KB and MQTT_PROMPT_DELIVERY from the environment (defaults as the broker's), and the header line shows those set;
 *        diagnosis: BENCH_HEAP_SAMPLE, BENCH_EMULATOR_HEAP_SAMPLE and BENCH_INGEST_HEAP_SAMPLE (a sampling heap profile of
 *        the broker child, the fleet child or this process — ingest — see common/src/heap-sample.ts), and a child's V8 lines (e.g.
 *        --broker-flags="--max-semi-space-size=128 --trace-gc") are passed to stderr
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Registry } from "prom-client";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { watchGc } from "@esp-fleet/common/gc-watch";
import { heapSampleFromEnv } from "@esp-fleet/common/heap-sample";
import { silentLogger } from "@esp-fleet/common/logger";
import { errorMessage } from "@esp-fleet/common/errors";
import { migrate, openDb } from "@esp-fleet/db";
import { createIngest } from "../src/index.ts";

/** utime + stime, in ticks (1/100 s), from the text of a /proc/<pid>/stat (fields after the command's ")"). */
function statTicks(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Node flags for a V8 CPU profile written into `dir` (none without one). */
const cpuProfileFlags = (dir: string | undefined): string[] => (dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : []);

/** CPU ticks (1/100 s) of each local PostgreSQL server process now (every process named `postgres`;
 * none when the database is on another host), from /proc. */
function postgresTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      ticks.set(pid, statTicks(stat));
    } catch {
      // the process ended meanwhile
    }
  }
  return ticks;
}

/** PostgreSQL's CPU seconds since `start()`, sampled each second per process, so a backend or worker that
 * exits meanwhile keeps what it used up to its last sample (a sum over the live processes went negative). */
function postgresCpu(): { start(): void; stop(): number | undefined } {
  let last = new Map<string, number>();
  let used = 0;
  let seen = false;
  let timer: NodeJS.Timeout | undefined;
  const sample = () => {
    const now = postgresTicks();
    if (now.size > 0) seen = true;
    for (const [pid, t] of now) used += t - (last.get(pid) ?? 0); // a process born since: all of its time is in the window
    last = now;
  };
  return {
    start() {
      last = postgresTicks();
      seen = last.size > 0;
      used = 0;
      timer = setInterval(sample, 1000);
    },
    stop() {
      clearInterval(timer);
      sample();
      return seen ? used / 100 : undefined;
    },
  };
}

/** CPU seconds of the whole machine so far (all cores), from /proc/stat: busy (neither idle nor iowait), and
 * of that, stolen — time the hypervisor gave to something else while this VM wanted its CPUs. */
function machineCpuS(): { busy: number; steal: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user/nice
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / 100, steal: (f[7] ?? 0) / 100 };
}

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "10000" },
    window: { type: "string", default: "60" },
    kinds: { type: "string", default: "fridge" },
    interval: { type: "string", default: "1000" },
    batch: { type: "string", default: "2000" },
    // ingest's limit of uncommitted messages before it stops reading (its back-pressure)
    "max-pending": { type: "string", default: "50000" },
    // ingest's batches committing at once (its INGEST_MAX_IN_FLIGHT; default: the service's)
    "max-in-flight": { type: "string" },
    harness: { type: "string", default: "emulator" },
    connections: { type: "string", default: "20" },
    "broker-profile": { type: "string" },
    // as deployed (docker-compose.yml, docs/broker.md "Young generation"): V8's semi-space at 128 MB, and
    // its allocation-site pretenuring off
    "broker-flags": { type: "string", default: "--max-semi-space-size=128 --no-allocation-site-pretenuring" },
    "emulator-nice": { type: "string", default: "0" },
    "emulator-profile": { type: "string" },
    // the fleet child's node flags (none by default: Node's own heap settings)
    "emulator-flags": { type: "string", default: "" },
  },
});
process.env.TEST_DATABASE_URL ||= "postgres://postgres:postgres@127.0.0.1:5432/postgres";
const { createTestDatabase } = await import("@esp-fleet/common/testing");
const logger = silentLogger();
const devices = Number(values.devices);
const windowS = Number(values.window);
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const children: ChildProcess[] = [];
const cleanup = () => children.forEach((c) => c.kill("SIGKILL"));
process.on("exit", cleanup);

function child(
  file: string,
  args: string[],
  onLine: (tag: string, data: string) => void,
  nodeFlags: string[] = [],
  niceness = 0,
): ChildProcess {
  const argv = [...nodeFlags, "--import", "tsx", file, ...args];
  // under nice(1), so that every thread of the process (V8's and libuv's too) has the niceness
  const c =
    niceness === 0
      ? spawn(process.execPath, argv, { stdio: ["pipe", "pipe", "inherit"] })
      : spawn("nice", ["-n", String(niceness), process.execPath, ...argv], { stdio: ["pipe", "pipe", "inherit"] });
  children.push(c);
  createInterface({ input: c.stdout! }).on("line", (line) => {
    // V8's own lines (a child run with --trace-gc in its flags) go to stderr, for diagnosis
    if (line.startsWith("[")) return void process.stderr.write(`${line}\n`);
    const i = line.indexOf(" ");
    onLine(i < 0 ? line : line.slice(0, i), i < 0 ? "" : line.slice(i + 1));
  });
  return c;
}

// BENCH_INGEST_HEAP_SAMPLE=<file>:<from s>:<to s>[:all] (diagnosis): this process's sampling heap profile (ingest
// and the bench's own bookkeeping), <from> to <to> seconds after the bench starts
await heapSampleFromEnv("BENCH_INGEST_HEAP_SAMPLE", "bench:e2e");
const db0 = await createTestDatabase("benche2e");
// a failed or interrupted run drops its database too (each run's is a few hundred MB)
const abandon = async (code: number) => {
  cleanup();
  await db0.drop().catch(() => {});
  process.exit(code);
};
process.once("SIGINT", () => void abandon(130));
process.once("SIGTERM", () => void abandon(143));
const db = await openDb({ databaseUrl: db0.url, dataDir: "/nonexistent", logger, poolMax: 4 });
await migrate(db, { logger });
// the broker child's settings that differ from its defaults (device-emulator/bench/broker-child.ts)
const brokerEnv = [
  "MQTT_CONCURRENCY",
  "MQTT_ACCEPT_HANDLES",
  "MQTT_DRAIN_TIMEOUT_MS",
  "MQTT_WRITE_HIGH_WATER_KB",
  "MQTT_PROMPT_DELIVERY",
]
  .filter((k) => process.env[k] !== undefined)
  .map((k) => `${k}=${process.env[k]}`)
  .join(" ");
console.log(
  `bench:e2e — ${values.harness} harness, ${devices} devices (${values.kinds}) every ${values.interval} ms, window ${windowS} s; broker flags "${values["broker-flags"]}"${brokerEnv ? `, ${brokerEnv}` : ""}${values["emulator-nice"] !== "0" ? `, emulator at nice ${values["emulator-nice"]}` : ""}${values["emulator-flags"] ? `, emulator flags "${values["emulator-flags"]}"` : ""}; load average before: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);

let brokerCpuUs = 0;
let brokerCpuAtStart = 0;
let brokerQueued = 0;
// the broker's JS heap in use and GC pause time, last second (BENCH_TRACE)
let brokerHeapMb = 0;
let brokerGcMsLast = 0;
/** messages in ingest's session queue in the broker (unacknowledged, or not sent yet), as last reported */
let ingestSessionQueued: number | undefined;
const INGEST_CLIENT_ID = "bench-e2e-ingest";
process.env.BENCH_WATCH_SESSION = INGEST_CLIENT_ID;
/** Per 10 s of the window (by commit time for latencies, by sample time otherwise), what `sliceTable()`
 * prints: the worst publish→commit latency beside what could have caused it — where the tail comes from. */
interface Slice {
  worstLagMs?: number;
  /** of the worst latency: device → ingest (emulator, sockets, broker) and ingest → commit (batching, database) */
  worstUpMs?: number;
  worstDownMs?: number;
  worstCommitMs?: number;
  brokerQueueMax?: number;
  /** the broker's largest socket write buffer (KB) and most sockets waiting for 'drain' at once */
  brokerOutKbMax?: number;
  brokerNeedDrainMax?: number;
  brokerDrainWaits?: number;
  ingestPendingMax?: number;
  brokerLoopMs?: number;
  brokerGcWorstMs?: number;
  brokerGcWorstKind?: string;
  brokerGcMs?: number;
  ingestLoopMs?: number;
  ingestGcWorstMs?: number;
  ingestGcWorstKind?: string;
  ingestGcMs?: number;
}
const slices: Slice[] = [];
const sliceAt = (wallMs: number): Slice => {
  const i = Math.max(0, Math.floor((wallMs - windowStartWall) / 10_000));
  return (slices[i] ??= {});
};
let brokerLoop = "";
/** deliveries the broker held because ingest's session held nearly every packet identifier (total) */
let brokerHeldForIds = 0;
/** messages the broker's offline-queue limit dropped (total) */
let brokerOfflineDropped = 0;
let brokerCpuPct = 0;
const port = await new Promise<number>((resolve) => {
  const profile = cpuProfileFlags(values["broker-profile"]);
  const flags = values["broker-flags"].split(" ").filter(Boolean);
  child(
    here("../../device-emulator/bench/broker-child.ts"),
    [],
    (tag, data) => {
      if (tag === "READY") resolve(Number(data));
      if (tag === "STATS") {
        const s = JSON.parse(data) as {
          cpuUs: number;
          queued?: number;
          deferred?: number;
          loopDelayMsMax?: number;
          connackMsMax?: number;
          gcMs?: number;
          gcWorstMs?: number;
          gcWorstKind?: string;
          outBufMax?: number;
          needDrain?: number;
          drainWaits?: number;
          heldForIds?: number;
          offlineDropped?: number;
          sessionQueued?: number;
          heapUsed?: number;
        };
        ingestSessionQueued = s.sessionQueued;
        brokerHeapMb = Math.round((s.heapUsed ?? 0) / 2 ** 20);
        brokerGcMsLast = s.gcMs ?? 0;
        brokerCpuUs = s.cpuUs;
        brokerHeldForIds = s.heldForIds ?? 0;
        brokerOfflineDropped = s.offlineDropped ?? 0;
        brokerQueued = s.queued ?? 0;
        if (inWindow) {
          const slice = sliceAt(Date.now());
          slice.brokerQueueMax = Math.max(slice.brokerQueueMax ?? 0, brokerQueued);
          slice.brokerOutKbMax = Math.max(slice.brokerOutKbMax ?? 0, (s.outBufMax ?? 0) / 1024);
          slice.brokerNeedDrainMax = Math.max(slice.brokerNeedDrainMax ?? 0, s.needDrain ?? 0);
          slice.brokerDrainWaits = (slice.brokerDrainWaits ?? 0) + (s.drainWaits ?? 0);
          slice.brokerLoopMs = Math.max(slice.brokerLoopMs ?? 0, s.loopDelayMsMax ?? 0);
          slice.brokerGcMs = (slice.brokerGcMs ?? 0) + (s.gcMs ?? 0);
          if ((s.gcWorstMs ?? 0) > (slice.brokerGcWorstMs ?? -1)) {
            slice.brokerGcWorstMs = s.gcWorstMs;
            slice.brokerGcWorstKind = s.gcWorstKind;
          }
        }
        brokerLoop = `loop delay max ${s.loopDelayMsMax} ms, accept→CONNACK max ${s.connackMsMax} ms, routings deferred ${s.deferred ?? 0}`;
      }
    },
    [...flags, ...profile],
  );
});
const url = `mqtt://127.0.0.1:${port}`;

let inWindow = false;
const lags: number[] = [];
let windowStartWall = 0;
let windowCommitted = 0;
const ingest = createIngest({
  db,
  mqttUrl: url,
  clientId: INGEST_CLIENT_ID,
  logger,
  metrics: new Registry(),
  batchSize: Number(values.batch),
  batchMs: 50,
  maxPending: Number(values["max-pending"]),
  ...(values["max-in-flight"] ? { maxInFlight: Number(values["max-in-flight"]) } : {}),
  onCommitted: ({ committedAt, deviceTs, receivedAt, commitMs }) => {
    if (!inWindow) return;
    windowCommitted += deviceTs.length;
    const slice = sliceAt(committedAt);
    slice.worstCommitMs = Math.max(slice.worstCommitMs ?? 0, commitMs);
    for (let i = 0; i < deviceTs.length; i++) {
      const lag = committedAt - deviceTs[i]!;
      lags.push(lag);
      if (lag > (slice.worstLagMs ?? -Infinity)) {
        slice.worstLagMs = lag;
        slice.worstUpMs = receivedAt[i]! - deviceTs[i]!;
        slice.worstDownMs = committedAt - receivedAt[i]!;
      }
    }
  },
});
await ingest.start();
// this process's (ingest's) worst event-loop delay and GC pause, each second, into the window's slices
const ingestLoop = monitorEventLoopDelay({ resolution: 10 });
ingestLoop.enable();
const ingestGc = watchGc();
// BENCH_TRACE=1: each second of the window on a line — the machine's and each process's CPU, the broker's
// routing backlog, heap and GC pauses and ingest's uncommitted messages — to see what a latency burst
// coincides with (PostgreSQL's CPU here is a plain sum over its live processes: negative in a second when
// one exits)
const trace = process.env.BENCH_TRACE === "1";
const procTicks = (pid: number | undefined): number => {
  try {
    return statTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return 0; // exited
  }
};
let traceLast: { t: number; machine: number; steal: number; kids: number[]; self: number; pg: number } | undefined;
const ingestSampler = setInterval(() => {
  const g = ingestGc.take();
  if (trace && inWindow) {
    const m = machineCpuS();
    const kids = children.map((c) => procTicks(c.pid));
    const usage = process.cpuUsage();
    const self = usage.user + usage.system;
    const pg = [...postgresTicks().values()].reduce((a, b) => a + b, 0);
    const now = { t: performance.now(), machine: m.busy, steal: m.steal, kids, self, pg };
    if (traceLast) {
      const dt = (now.t - traceLast.t) / 1000;
      const pct = (v: number) => Math.round((100 * v) / dt);
      const kidPct = kids.map((k, i) => pct((k - (traceLast!.kids[i] ?? k)) / 100)).join("/");
      process.stdout.write(
        `  trace +${((Date.now() - windowStartWall) / 1000).toFixed(0)}s machine ${pct(now.machine - traceLast.machine)}% (stolen ${pct(now.steal - traceLast.steal)}%) broker/emulator ${kidPct}% ingest ${pct((now.self - traceLast.self) / 1e6)}% pg ${pct((now.pg - traceLast.pg) / 100)}% broker queue ${brokerQueued} pending ${ingest.stats().pending}; broker heap ${brokerHeapMb} MB, GC pauses ${brokerGcMsLast} ms\n`,
      );
    }
    traceLast = now;
  }
  if (inWindow) {
    const slice = sliceAt(Date.now());
    slice.ingestPendingMax = Math.max(slice.ingestPendingMax ?? 0, ingest.stats().pending);
    slice.ingestLoopMs = Math.max(slice.ingestLoopMs ?? 0, Math.round(ingestLoop.max / 1e6));
    slice.ingestGcMs = (slice.ingestGcMs ?? 0) + Math.round(g.minor + g.major + g.incremental + g.other);
    if (g.worst > (slice.ingestGcWorstMs ?? -1)) {
      slice.ingestGcWorstMs = Math.round(g.worst);
      slice.ingestGcWorstKind = g.worstKind;
    }
  }
  ingestLoop.reset();
}, 1000);

const cpu0 = process.cpuUsage();
let windowStart = 0;
let windowCpu = process.cpuUsage();
let windowEnd: Record<string, number> = {};
let ingestCpuPct = 0;
const pgCpu = postgresCpu();
let pgCpuPct: number | undefined;
let machineAtStart = { busy: 0, steal: 0 };
let machineBusyPct = 0;
let machineStealPct = 0;
let windowWall = 0;
let settledAt = 0;
let watch: NodeJS.Timeout | undefined;
// On failure, stop the children with SIGTERM (not the exit handler's SIGKILL) so a profiled broker
// writes its profile — the failing run is the one worth profiling.
const stopChildren = () =>
  Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGTERM");
          setTimeout(resolve, 5000).unref();
        }),
    ),
  );
const done = await new Promise<Record<string, number>>((resolve, reject) => {
  const lean = values.harness === "lean";
  const opts = lean
    ? { url, devices, windowS, intervalMs: Number(values.interval), connections: Number(values.connections), warmupS: 5 }
    : {
        url,
        devices,
        kinds: values.kinds.split(","),
        windowS,
        intervalMs: Number(values.interval),
        rampMs: Math.round(devices * 0.5),
        seed: 1,
        goOnStdin: true,
      };
  const file = lean ? here("./lean-publisher-child.ts") : here("../../device-emulator/bench/emulator-child.ts");
  const c = child(
    file,
    [JSON.stringify(opts)],
    (tag, data) => {
      if (tag === "PROGRESS") process.stdout.write(`  progress: ${data} broker queue ${brokerQueued}, ${brokerLoop}\n`);
      if (tag === "SETTLED") {
        // The steady state starts when the connection storm's backlog is worked off: the broker's routing
        // queue and ingest's uncommitted messages both under a second's worth of readings for 3 s in a row.
        settledAt = performance.now();
        console.log(`  fleet at its pace: ${data}; waiting for the broker queue and ingest to drain`);
        const perSecond = (devices * 1000) / Number(values.interval);
        let calm = 0;
        watch = setInterval(() => {
          const pendingNow = ingest.stats().pending;
          calm = brokerQueued < perSecond && pendingNow < perSecond ? calm + 1 : 0;
          if (calm < 3) return;
          clearInterval(watch);
          watch = undefined;
          console.log(
            `  drained ${((performance.now() - settledAt) / 1000).toFixed(1)} s after the fleet settled (broker queue ${brokerQueued}, ingest pending ${pendingNow})`,
          );
          c.stdin!.write("GO\n");
        }, 1000);
      }
      if (tag === "WINDOW_START") {
        if (watch) {
          clearInterval(watch);
          console.log(
            `  NOT drained 120 s after the fleet settled (broker queue ${brokerQueued}, ingest pending ${ingest.stats().pending}): the window measures a pipeline that is behind`,
          );
        }
        inWindow = true;
        windowStart = performance.now();
        windowStartWall = Date.now();
        windowCpu = process.cpuUsage();
        brokerCpuAtStart = brokerCpuUs;
        pgCpu.start();
        machineAtStart = machineCpuS();
        console.log(`  window start: ${data}`);
      }
      if (tag === "WINDOW_END") {
        inWindow = false;
        windowWall = performance.now() - windowStart;
        const u = process.cpuUsage(windowCpu);
        ingestCpuPct = ((u.user + u.system) / 1000 / windowWall) * 100;
        brokerCpuPct = ((brokerCpuUs - brokerCpuAtStart) / 1000 / windowWall) * 100;
        const pgCpuS = pgCpu.stop();
        if (pgCpuS !== undefined) pgCpuPct = (pgCpuS * 1e5) / windowWall;
        const machine = machineCpuS();
        machineBusyPct = ((machine.busy - machineAtStart.busy) * 1e5) / windowWall;
        machineStealPct = ((machine.steal - machineAtStart.steal) * 1e5) / windowWall;
        windowEnd = JSON.parse(data) as Record<string, number>;
        console.log(`  window end: ${data}`);
      }
      if (tag === "FAIL") reject(new Error(data));
      if (tag === "DONE") resolve(JSON.parse(data) as Record<string, number>);
    },
    [...values["emulator-flags"].split(" ").filter(Boolean), ...cpuProfileFlags(values["emulator-profile"])],
    Number(values["emulator-nice"]),
  );
  c.once("exit", (code) => code && reject(new Error(`emulator exited with ${code}`)));
}).catch(async (e: unknown) => {
  await stopChildren();
  console.error(`bench:e2e failed: ${errorMessage(e)}`);
  await abandon(1);
  throw e; // not reached
});

const telemetryRows = async () =>
  Number(
    (
      await db.query<{ n: number }>(
        "SELECT (SELECT count(*) FROM fridge_readings) + (SELECT count(*) FROM sqal_samples) + (SELECT count(*) FROM feeding_records) AS n",
      )
    ).rows[0]?.n,
  );
// Up to 90 s for the rest to arrive, longer (up to 5 min) while rows still arrive: a pipeline that is
// catching up (ingest reconnecting to a long session queue) is not a loss.
const waitStart = Date.now();
let stored = await telemetryRows();
let lastGrowth = Date.now();
while (stored < (done.readings ?? 0)) {
  const now = Date.now();
  if (now - waitStart > 300_000 || (now - waitStart > 90_000 && now - lastGrowth > 10_000)) break;
  await new Promise((r) => setTimeout(r, 1000));
  const n = await telemetryRows();
  if (n > stored) lastGrowth = Date.now();
  stored = n;
}
if (Date.now() - waitStart > 91_000)
  console.log(`  the last rows took ${((Date.now() - waitStart) / 1000).toFixed(0)} s to arrive after the fleet stopped`);
await ingest.drain();
stored = await telemetryRows();
// Where rows are missing: a device whose sequence numbers within one boot have a hole lost a reading (or
// it is still on its way); one with none but fewer rows never delivered its last ones. Fridge readings
// only (the default --kinds); other kinds' rows count in the total but are not searched for holes.
const gaps = (
  await db.query<{ dev: string; boot: number; n: number; span: number }>(
    "SELECT dev, boot, count(*)::int AS n, (max(seq) - min(seq) + 1)::int AS span FROM fridge_readings GROUP BY dev, boot HAVING count(*) <> max(seq) - min(seq) + 1 ORDER BY dev LIMIT 5",
  )
).rows;
// Where the missing ones could still be: the broker's routing backlog, ingest's session (not connected:
// the broker holds its queue), devices that were offline when the fleet stopped (their readings never left),
// or the sessions' unacknowledged messages when they closed (the emulator child's clean close waits up to
// a minute for PUBACKs; what is left is gone with the device's RAM: never confirmed to the device).
const whereMissing = () => {
  const st = ingest.stats();
  return `broker routing backlog ${brokerQueued}, ingest's session queue ${ingestSessionQueued ?? "?"}; ingest connected ${st.connected} (connections ${st.connects}), received ${st.received}, acknowledged ${st.acked}, pending ${st.pending}; devices offline at stop ${done.notOnline ?? "?"} (buffered readings ${done.buffered ?? "?"}), QoS 1 messages unacknowledged when their session closed ${done.unacked ?? "?"}, reconnects ${done.reconnects ?? "?"}`;
};
if (stored < (done.readings ?? 0)) {
  console.log(
    `  ${(done.readings ?? 0) - stored} rows missing after the wait; devices with holes in their sequence: ${JSON.stringify(gaps)}; ${whereMissing()}`,
  );
  await new Promise((r) => setTimeout(r, 15_000));
  stored = await telemetryRows();
  console.log(`  15 s later: ${(done.readings ?? 0) - stored} missing; ${whereMissing()}`);
}
clearInterval(ingestSampler);
ingestGc.stop();
/** The per-10 s slices as aligned rows: worst latency (device → ingest + ingest → commit); the longest
 * commit; the broker's routing backlog, its largest socket write buffer (KB), its sockets waiting for 'drain'
 * and ingest's uncommitted messages (largest of the per-second samples); the deliveries that waited for
 * 'drain' (sum); broker and ingest worst loop delay, worst GC pause (its kind) and GC pause total. */
function sliceTable(): string[] {
  const ms = (x: number | undefined) => (x === undefined ? "-" : String(Math.round(x)));
  const pause = (x: number | undefined, kind: string | undefined) => (x === undefined ? "-" : `${x} ${kind || ""}`.trim());
  const rows = [
    [
      "10 s",
      "worst lag = up + down",
      "commit",
      "broker queue",
      "out KB",
      "drain",
      "waits",
      "pending",
      "broker loop",
      "worst GC",
      "GC",
      "ingest loop",
      "worst GC",
      "GC",
    ],
    ...Array.from(slices, (sl, i) => [
      String(i + 1),
      sl?.worstLagMs === undefined ? "-" : `${ms(sl.worstLagMs)} = ${ms(sl.worstUpMs)} + ${ms(sl.worstDownMs)}`,
      ms(sl?.worstCommitMs),
      ms(sl?.brokerQueueMax),
      ms(sl?.brokerOutKbMax),
      ms(sl?.brokerNeedDrainMax),
      ms(sl?.brokerDrainWaits),
      ms(sl?.ingestPendingMax),
      ms(sl?.brokerLoopMs),
      pause(sl?.brokerGcWorstMs, sl?.brokerGcWorstKind),
      ms(sl?.brokerGcMs),
      ms(sl?.ingestLoopMs),
      pause(sl?.ingestGcWorstMs, sl?.ingestGcWorstKind),
      ms(sl?.ingestGcMs),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => `    ${r.map((cell, c) => cell.padStart(widths[c]!)).join("  ")}`);
}
const s = ingest.stats();
lags.sort((a, b) => a - b);
const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))] ?? NaN;
const rate = windowCommitted / (windowWall / 1000);
const produced = done.readings ?? 0;
console.log(
  [
    `result: window ${(windowWall / 1000).toFixed(1)} s, messages committed ${windowCommitted} → ${Math.round(rate)} msg/s (emulator sent ${windowEnd.sent} in the window, ${windowEnd.readings} readings)`,
    `  publish→commit latency: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${lags.at(-1)} ms; per 10 s of the window (ms):`,
    ...sliceTable(),
    `  readings produced ${produced}, telemetry rows stored ${stored}, ${(ingestSessionQueued ?? 0) > 0 || brokerQueued > 0 ? "not stored yet" : "loss"} ${produced - stored} (QoS 1 messages unacknowledged to their devices when the fleet stopped: ${done.unacked ?? "?"}; messages still in ingest's session queue in the broker: ${ingestSessionQueued ?? "?"}), duplicates absorbed ${s.duplicates}, dead letters ${s.deadLettered}, ingest's broker connections ${s.connects}, deliveries held for packet identifiers ${brokerHeldForIds}, dropped by the offline-queue limit ${brokerOfflineDropped}`,
    `  emulator: cpu ${windowEnd.cpuPct?.toFixed(0)} %, dropped ${done.dropped}, buffered ${done.buffered}; ingest process cpu ${ingestCpuPct.toFixed(0)} %, broker cpu ${brokerCpuPct.toFixed(0)} %, PostgreSQL cpu ${pgCpuPct === undefined ? "n/a (not local)" : `${pgCpuPct.toFixed(0)} %`}, retries ${s.retries}`,
    `  machine busy in the window: ${machineBusyPct.toFixed(0)} % of one core (${cpus().length} cores), of which stolen by the hypervisor ${machineStealPct.toFixed(0)} %`,
    `  load average after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}; total ingest cpu ${(((u) => u.user + u.system)(process.cpuUsage(cpu0)) / 1e6).toFixed(1)} s`,
  ].join("\n"),
);
await ingest.stop();
await db.close();
await db0.drop();
await stopChildren(); // SIGTERM: a profiled broker writes its profile
process.exit(0);
