/**
 * Graded samples per second on one core (issue 6 target: ≥ 20,000/s).
 * `npm run bench:sqal` — grades a pool of seeded samples from the emulator's sensor models (all tiers, with defects) for a few
 * seconds, then the same with CBOR decode + zod validation in front (what the service does per message).
 */
import { createRng } from "@esp-fleet/common/random";
import { decodeMessage, deviceTopic, encodeCbor, type SqalSample } from "@esp-fleet/schemas";
import { gradeSample } from "../src/grading/index.ts";
import { SQAL_PROFILE, drawTier, measureSample } from "@esp-fleet/device-emulator";

const POOL = 2000;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const rng = createRng(2024);
const weights = Object.fromEntries(Object.entries(SQAL_PROFILE.tiers).map(([t, m]) => [t, m.weight])) as Parameters<
  typeof drawTier
>[1];
// The emulator's own VL53L8CH + AS7341 model: every tier in its population share, with its defects.
const samples = Array.from({ length: POOL }, (_, i) => {
  const m = measureSample(rng, SQAL_PROFILE, drawTier(rng, weights));
  return {
    v: 1,
    dev: "ESP32_LL_01",
    boot: 1,
    seq: i,
    ts: 1_760_000_000_000 + i,
    sample: `1.${i}`,
    tof: m.tof,
    spec: m.spec,
    temp: m.temp,
    sim: { tier: m.tier, defects: m.defects },
  };
});
const topic = deviceTopic({ site: "LL", kind: "sqal", dev: "ESP32_LL_01" }, "telemetry");
const payloads = samples.map((s) => encodeCbor(s));

function run(name: string, fn: (i: number) => number): void {
  // warm-up
  let sink = 0;
  for (let i = 0; i < 5000; i++) sink += fn(i % POOL);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let n = 0;
  const deadline = t0 + SECONDS * 1000;
  while (performance.now() < deadline) {
    for (let k = 0; k < 500; k++) sink += fn((n + k) % POOL);
    n += 500;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log(
    `${name.padEnd(32)} ${Math.round(n / wall)
      .toLocaleString("en-US")
      .padStart(10)} samples/s  ` +
      `(${n.toLocaleString("en-US")} in ${wall.toFixed(1)} s, ${(cpuS / wall).toFixed(2)} core, ${((wall / n) * 1e6).toFixed(1)} µs/sample)  [checksum ${sink.toFixed(0)}]`,
  );
}

console.log(`sqal graders — node ${process.version}, pool ${POOL} seeded samples, ${SECONDS} s per case`);
run("grade (ToF + spectral + fuse)", (i) => gradeSample(samples[i]!).score);
run("decode + validate + grade", (i) => {
  const d = decodeMessage(topic, payloads[i]!);
  if (!d.ok) throw new Error(d.error.error);
  return gradeSample(d.value.message as SqalSample).score;
});
