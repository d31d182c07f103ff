import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "node:inspector/promises";
import { freePort } from "@esp-fleet/common/testing";
import { startFleet } from "../src/fleet.ts";
const N = 10000;
const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), "promo-"));
writeFileSync(
  join(dir, "m.conf"),
  `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n`,
);
const broker = spawn("/usr/sbin/mosquitto", ["-c", join(dir, "m.conf")], { stdio: "ignore" });
await new Promise((r) => setTimeout(r, 300));
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
await new Promise((r) => setTimeout(r, 8000));
const s = new Session();
s.connect();
(globalThis as any).gc?.();
await s.post("HeapProfiler.startSampling", { samplingInterval: 4096 });
await new Promise((r) => setTimeout(r, 6000));
const { profile } = (await s.post("HeapProfiler.getSamplingProfile")) as any;
await s.post("HeapProfiler.stopSampling");
// aggregate self size by allocating function + its caller chain (top 3 frames)
const agg = new Map<string, number>();
let total = 0;
function walk(node: any, stack: string[]) {
  const cf = node.callFrame;
  const name = `${cf.functionName || "(anon)"}@${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber}`;
  const st = [name, ...stack].slice(0, 4);
  if (node.selfSize > 0) {
    const k = st.join(" < ");
    agg.set(k, (agg.get(k) ?? 0) + node.selfSize);
    total += node.selfSize;
  }
  for (const c of node.children) walk(c, st);
}
walk(profile.head, []);
console.log("live sampled bytes allocated in 6 s:", total, "per message ~", Math.round(total / (6 * N * 1.05)));
for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 30))
  console.log(String(Math.round(v / 1024)).padStart(7), "KB", k);
await fleet.stop();
broker.kill();
process.exit(0);
