/**
 * What a fridge fleet publishes, by channel and event type: 300 fridges (seed 1, fault probability 0.1,
 * the bench's settings) on a ManualClock and memory transports for 120 simulated seconds. No timing —
 * a count of messages per reading, to see which traffic a change removes.
 * Usage: node --import tsx device-emulator/bench/message-mix.ts
 */
import { ManualClock } from "@esp-fleet/common/clock";
import { decodeCbor } from "@esp-fleet/schemas";
import { startFleet } from "../src/fleet.ts";
import { MemoryTransport } from "../src/transports/memory.ts";

const clock = new ManualClock(1_767_225_600_000);
const transports: MemoryTransport[] = [];
const fleet = await startFleet({
  devices: 300,
  kinds: ["fridge"],
  clock,
  seed: 1,
  faultProb: 0.1,
  transport: () => {
    const t = new MemoryTransport("accept");
    transports.push(t);
    return t;
  },
  firmware: { watchdogMs: 0 },
});
for (let i = 0; i < 120; i++) clock.advance(1000);
const counts: Record<string, number> = {};
for (const t of transports)
  for (const p of t.take()) {
    let key: string = p.channel;
    if (key === "event") {
      const d = decodeCbor(p.payload as Uint8Array);
      const e = (d.ok ? d.value : {}) as { type?: string; data?: { field?: string } };
      key = `event:${e.type}${e.data?.field ? `:${e.data.field}` : ""}`;
    }
    counts[key] = (counts[key] ?? 0) + 1;
  }
const readings = counts.telemetry ?? 0;
const total = Object.values(counts).reduce((a, b) => a + b, 0);
const perReading = Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, Math.round((v / readings) * 10_000) / 10_000]));
process.stdout.write(
  `${JSON.stringify({ readings, messages: total, messagesPerReading: total / readings, counts, perReading }, null, 2)}\n`,
);
await fleet.stop();
