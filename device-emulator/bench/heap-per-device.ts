/**
 * Memory per online device, in this process: N fridges (default 2,000) against a Mosquitto child, all
 * online, then a 25 s steady window (CPU %, RSS and V8 heap now/max), then forced GCs: live heap per
 * device. With a second argument, also writes a heap snapshot there (analyse with Chrome DevTools).
 * Needs --expose-gc. Usage:
 *   flock /tmp/bench.lock node --expose-gc --import tsx device-emulator/bench/heap-per-device.ts 3000 [file]
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";
import { freePort } from "@esp-fleet/common/testing";
import { startFleet } from "../src/fleet.ts";

const N = Number(process.argv[2] ?? 2000);
const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p));
const gc = (globalThis as { gc?: () => void }).gc;
if (!MOSQUITTO || !gc) throw new Error("needs the mosquitto binary and node --expose-gc");
const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), "heap-mosq-"));
writeFileSync(
  join(dir, "m.conf"),
  `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n`,
);
const broker = spawn(MOSQUITTO, ["-c", join(dir, "m.conf")], { stdio: "ignore" });
await new Promise((r) => setTimeout(r, 300));
gc();
const before = process.memoryUsage();
const fleet = await startFleet({
  url: `mqtt://127.0.0.1:${port}`,
  devices: N,
  kinds: ["fridge"],
  seed: 1,
  faultProb: 0.1,
  rampMs: N,
  connectTimeoutMs: 30_000,
  firmware: { watchdogMs: 0 },
});
while (fleet.stats().online < N) await new Promise((r) => setTimeout(r, 500));
await new Promise((r) => setTimeout(r, 5000));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let rssMax = 0;
let heapTotalMax = 0;
for (let i = 0; i < 25; i++) {
  await new Promise((r) => setTimeout(r, 1000));
  const m = process.memoryUsage();
  rssMax = Math.max(rssMax, m.rss);
  heapTotalMax = Math.max(heapTotalMax, m.heapTotal);
}
const cpu = process.cpuUsage(cpu0);
const now = process.memoryUsage();
gc();
gc();
const live = process.memoryUsage();
const kb = (bytes: number) => Math.round((bytes / N / 1024) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({
    devices: N,
    cpuPct: Math.round(((cpu.user + cpu.system) / 10 / (performance.now() - t0)) * 10) / 10,
    steady: {
      rssKbPerDevice: kb(now.rss),
      rssMaxKbPerDevice: kb(rssMax),
      heapTotalMaxKbPerDevice: kb(heapTotalMax),
      heapUsedKbPerDevice: kb(now.heapUsed),
    },
    afterGc: {
      heapUsedKbPerDevice: kb(live.heapUsed - before.heapUsed),
      heapTotalKbPerDevice: kb(live.heapTotal - before.heapTotal),
    },
  })}\n`,
);
if (process.argv[3]) process.stdout.write(`${writeHeapSnapshot(process.argv[3])}\n`);
await fleet.stop();
broker.kill();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
