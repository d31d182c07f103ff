/**
 * The lean publisher harness of bench:e2e (`--harness lean`): N device identities multiplexed over a few
 * MQTT.js connections, each device publishing one fridge reading per interval at QoS 1 (envelope, topic
 * and CBOR exactly as a device's). Same stdout protocol as device-emulator/bench/emulator-child.ts:
 * PROGRESS, WINDOW_START, WINDOW_END, DONE. Usage: tsx lean-publisher-child.ts '<json options>'
 */
// first: mqtt-packet with quiet loggers, then one write() per MQTT packet (common/src/quiet-debug.ts, packet-writes.ts)
import "@esp-fleet/common/quiet-debug";
import "@esp-fleet/common/packet-writes";
import mqtt from "mqtt";
import type { DeviceAddress } from "@esp-fleet/schemas";
import { fridgeReading } from "../test/helpers.ts";

interface Options {
  url: string;
  devices: number;
  windowS: number;
  intervalMs: number;
  connections: number;
  warmupS: number;
}
const o = JSON.parse(process.argv[2] ?? "{}") as Options;
const emit = (tag: string, data: Record<string, unknown>) => process.stdout.write(`${tag} ${JSON.stringify(data)}\n`);

const conns = await Promise.all(
  Array.from({ length: o.connections }, (_, i) => mqtt.connectAsync(o.url, { clientId: `lean-pub-${i}`, clean: true })),
);
const devices: DeviceAddress[] = Array.from({ length: o.devices }, (_, i) => ({
  site: ["LL", "LS", "MT"][i % 3]!,
  kind: "fridge",
  dev: `FR_${String(i).padStart(5, "0")}`,
}));
const seq = new Array<number>(o.devices).fill(0);
let readings = 0;
let errors = 0;
let inflight = 0;
const slices = 20; // each interval split in 20 ticks so the load is smooth
const tickMs = o.intervalMs / slices;
let tick = 0;
const cpu0 = process.cpuUsage();
const timer = setInterval(() => {
  const part = tick++ % slices;
  for (let i = part; i < devices.length; i += slices) {
    const a = devices[i]!;
    const m = fridgeReading(a, 1, seq[i]!++);
    const c = conns[i % conns.length]!;
    inflight++;
    c.publish(m.topic, Buffer.from(m.payload), { qos: 1 }, (err) => {
      inflight--;
      if (err) errors++;
      else readings++;
    });
  }
}, tickMs);

await new Promise((r) => setTimeout(r, o.warmupS * 1000));
const w0 = performance.now();
const r0 = readings;
const c0 = process.cpuUsage();
emit("WINDOW_START", { readings: r0 });
for (let s = 0; s < o.windowS; s += 10) {
  await new Promise((r) => setTimeout(r, Math.min(10, o.windowS - s) * 1000));
  emit("PROGRESS", { readings, inflight, errors });
}
const cpu = process.cpuUsage(c0);
const wallMs = performance.now() - w0;
emit("WINDOW_END", {
  wallMs,
  readings: readings - r0,
  sent: readings - r0,
  cpuPct: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
  errors,
});
clearInterval(timer);
while (inflight > 0) await new Promise((r) => setTimeout(r, 50));
await Promise.all(conns.map((c) => c.endAsync()));
const total = process.cpuUsage(cpu0);
emit("DONE", { readings, sent: readings, dropped: 0, buffered: 0, errors, cpuS: (total.user + total.system) / 1e6 });
process.exit(0);
