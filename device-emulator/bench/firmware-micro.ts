/**
 * The firmware's own cost per reading, without MQTT: N fridges (default 10,000; seed 1, fault probability
 * 0.1, as in bench:emulator) on a ManualClock with the fleet's 10 ms timer grid and transports that take a
 * publish and drop it. After 20 simulated seconds of warm-up, 60 simulated seconds are timed (CPU of this
 * process): µs per reading and per message — models, CBOR encoding, scheduler, firmware bookkeeping and
 * the garbage they leave. Repeats 3 rounds and prints each. Usage:
 *   flock /tmp/bench.lock node --import tsx device-emulator/bench/firmware-micro.ts [N] [kind]
 * (add --cpu-prof before --import for a profile of the same work)
 */
import { ManualClock } from "@esp-fleet/common/clock";
import type { DeviceKind } from "@esp-fleet/schemas";
import { startFleet } from "../src/fleet.ts";
import type { DeviceTransport } from "../src/transport.ts";
import { MemoryTransport } from "../src/transports/memory.ts";

const N = Number(process.argv[2] ?? 10_000);
const kind = (process.argv[3] ?? "fridge") as DeviceKind;
let published = 0;

/** MemoryTransport's link behaviour, but a publish is counted and dropped (no array of 600k records). */
class DroppingTransport extends MemoryTransport {
  override publish(): void {
    published++;
  }
}

const clock = new ManualClock(1_767_225_600_000);
const fleet = await startFleet({
  devices: N,
  kinds: [kind],
  clock,
  seed: 1,
  faultProb: 0.1,
  tickMs: 10,
  rampMs: 1000,
  transport: (): DeviceTransport => new DroppingTransport("accept"),
  firmware: { watchdogMs: 0 },
});
const advance = (s: number) => {
  for (let i = 0; i < s * 100; i++) clock.advance(10);
};
advance(20);
for (let round = 1; round <= 6; round++) {
  const r0 = fleet.stats().readings;
  const p0 = published;
  const c0 = process.cpuUsage();
  advance(30);
  const c = process.cpuUsage(c0);
  const us = c.user + c.system;
  const readings = fleet.stats().readings - r0;
  const msgs = published - p0;
  process.stdout.write(
    `${JSON.stringify({
      round,
      devices: N,
      kind,
      readings,
      messages: msgs,
      usPerReading: Math.round((us / readings) * 100) / 100,
      usPerMessage: Math.round((us / msgs) * 100) / 100,
      coreAt1HzPct: Math.round(((us / readings) * N) / 1e4) / 1,
    })}\n`,
  );
}
await fleet.stop();
process.exit(0);
