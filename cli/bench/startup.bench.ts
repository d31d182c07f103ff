/**
 * bench:startup — the all-in-one's start-up time and memory (issue #7 targets: `/health/ready` within
 * 10 s; under 400 MB resident with the default demo fleet).
 *
 * Starts `esp-fleet start` as a child process (fresh DATA_DIR, free ports), times spawn → first 200 from
 * /health/ready, samples its resident memory every second for --seconds (default 90), stops it with
 * SIGINT (timing the clean shutdown), then starts it again on the same data (warm start).
 * Usage: npm run bench:startup [-- --seconds 90]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { freePort } from "@esp-fleet/common/testing";

const seconds = Number(process.argv[process.argv.indexOf("--seconds") + 1]) || 90;
const bin = new URL("../bin/esp-fleet.mjs", import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), "esp-fleet-startup-"));

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function start(label: string): Promise<{ child: ChildProcess; httpPort: number; readyMs: number }> {
  const [httpPort, mqttPort, wsPort] = [await freePort(), await freePort(), await freePort()];
  const t0 = performance.now();
  const child = spawn(process.execPath, [bin, "start"], {
    env: {
      ...process.env,
      DATA_DIR: dataDir,
      HTTP_PORT: String(httpPort),
      MQTT_PORT: String(mqttPort),
      MQTT_WS_PORT: String(wsPort),
      LOG_LEVEL: "warn",
      LOG_PRETTY: "0",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${label}: esp-fleet start exited with ${child.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/health/ready`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const readyMs = performance.now() - t0;
  console.log(`${label}: ready after ${(readyMs / 1000).toFixed(2)} s (spawn → /health/ready 200)`);
  return { child, httpPort, readyMs };
}

async function stop(child: ChildProcess, label: string): Promise<number> {
  const t0 = performance.now();
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? -1)));
  child.kill("SIGINT");
  const code = await exited;
  const ms = performance.now() - t0;
  console.log(`${label}: clean shutdown in ${(ms / 1000).toFixed(2)} s, exit code ${code}`);
  return ms;
}

console.log(
  `machine: ${cpus().length} × ${cpus()[0]?.model}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
const cold = await start("cold start (empty DATA_DIR)");
let peak = 0;
let last = 0;
for (let s = 1; s <= seconds; s++) {
  await new Promise((r) => setTimeout(r, 1000));
  last = rssMb(cold.child.pid!);
  peak = Math.max(peak, last);
  if (s % 15 === 0) console.log(`  t=${s}s RSS ${last.toFixed(0)} MB (peak ${peak.toFixed(0)} MB)`);
}
const lots = (await (await fetch(`http://127.0.0.1:${cold.httpPort}/api/v1/lots`)).json()) as { lots: { status: string }[] };
const decided = lots.lots.filter((l) => l.status === "approved" || l.status === "rejected").length;
console.log(
  `after ${seconds} s: ${lots.lots.length} lots, ${decided} decided; RSS now ${last.toFixed(0)} MB, peak ${peak.toFixed(0)} MB`,
);
await stop(cold.child, "cold run");
const warm = await start("warm start (same DATA_DIR)");
await stop(warm.child, "warm run");
rmSync(dataDir, { recursive: true, force: true });
console.log(
  `\nready: cold ${(cold.readyMs / 1000).toFixed(2)} s, warm ${(warm.readyMs / 1000).toFixed(2)} s — target < 10 s ${Math.max(cold.readyMs, warm.readyMs) < 10_000 ? "met" : "MISSED"}; ` +
    `peak RSS ${peak.toFixed(0)} MB — target < 400 MB ${peak < 400 ? "met" : "MISSED"}`,
);
