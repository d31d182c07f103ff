/**
 * bench:serial — the serial bridge's throughput and added latency over a socat pty pair.
 *
 * 1. unpaced: a synthetic device writes reliable publish frames as fast as the link window allows;
 *    frames/s and bytes/s (wire bytes) arriving at an MQTT subscriber through bridge → Aedes.
 * 2. paced at 921600 baud (10 bits/byte): frames written at a fixed share of the line rate; added
 *    latency = MQTT delivery time − the moment the frame's last byte left the (emulated) UART.
 *
 * Run: flock /tmp/bench.lock npm run bench:serial
 */
import mqtt from "mqtt";
import { systemClock } from "@esp-fleet/common/clock";
import { silentLogger } from "@esp-fleet/common/logger";
import { startTestBroker } from "@esp-fleet/common/testing";
import { decodeCbor, encodeCbor, NOMINAL_FRIDGE } from "@esp-fleet/schemas";
import { SerialBridge } from "../src/bridge.ts";
import { FrameReader } from "../src/frame-reader.ts";
import { encodeFrame, PROTOCOL_VERSION } from "../src/frames.ts";
import { LinkEndpoint } from "../src/link.ts";
import { openPtyPair } from "../src/pty.ts";
import { closeSerialPort, openSerialPort, PacedWriter } from "../src/serial-port.ts";

const BAUD = 921600;
const log = silentLogger();

function payload(seq: number, pad: number): Uint8Array {
  return encodeCbor({
    v: 1,
    dev: "BENCH_01",
    boot: 1,
    seq,
    ts: Date.now(),
    ...NOMINAL_FRIDGE,
    t: 4.5,
    pad: "x".repeat(pad),
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function main() {
  const broker = await startTestBroker();
  const pty = await openPtyPair();
  const bridge = new SerialBridge({ port: pty.b, mqttUrl: broker.url, log, reopenMs: 100 });
  await bridge.start();
  const port = await openSerialPort(pty.a, BAUD);
  const paced = new PacedWriter((b) => port.write(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), BAUD, systemClock);
  let pacing = false;
  const lastByteAt = new Map<number, number>();
  let framing: number | undefined;
  const raw = (b: Uint8Array) => port.write(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  const write = (b: Uint8Array) => {
    if (!pacing) return raw(b);
    const seq = framing;
    paced.write(b, seq === undefined ? undefined : () => lastByteAt.set(seq, performance.now()));
  };
  const link = new LinkEndpoint({
    clock: systemClock,
    write,
    retryMs: 300,
    maxRetries: Infinity,
    window: 16,
    queueLimit: 100_000,
  });
  const reader = new FrameReader();
  let hostHello = false;
  port.on("data", (chunk: Buffer) => {
    for (const ev of reader.push(chunk))
      if (ev.type === "frame") {
        if (ev.frame.type === "hello") hostHello = true;
        link.receive(ev.frame);
      }
  });
  const hello = () =>
    link.sendFrame({
      type: "hello",
      body: {
        role: "device",
        proto: PROTOCOL_VERSION,
        dev: "BENCH_01",
        kind: "fridge",
        site: "LL",
        fw: "bench",
        caps: [],
        boot: 1,
        hb: 1000,
        sid: 42,
      },
    });
  while (!hostHello || bridge.state !== "attached") {
    hello();
    await new Promise((r) => setTimeout(r, 50));
  }
  const sub = await mqtt.connectAsync(broker.url, { clientId: "bench-sub" });
  const arrivals = new Map<number, number>();
  sub.on("message", (_t, p) => {
    const m = decodeCbor(p);
    if (m.ok) arrivals.set((m.value as { seq: number }).seq, performance.now());
  });
  await sub.subscribeAsync("LL/fridge/BENCH_01/telemetry", { qos: 1 });
  // keep the device "alive" for the bridge's silence detection
  const hb = setInterval(() => link.sendFrame({ type: "heartbeat", body: { up: Math.round(performance.now()) } }), 500);

  const results: string[] = [];
  // ---- 1. unpaced throughput
  for (const pad of [100, 500]) {
    arrivals.clear();
    const N = 6000;
    const base = pad * 1_000_000;
    const frameBytes = encodeFrame({ type: "publish", body: { ls: 100000, ch: "telemetry", p: payload(base, pad) } }).length;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) link.sendReliable({ type: "publish", body: { ch: "telemetry", p: payload(base + i, pad) } });
    while ([...Array(N).keys()].some((i) => !arrivals.has(base + i)) && performance.now() - t0 < 60_000)
      await new Promise((r) => setTimeout(r, 20));
    const s = (performance.now() - t0) / 1000;
    const got = [...Array(N).keys()].filter((i) => arrivals.has(base + i)).length;
    results.push(
      `unpaced, ${frameBytes} B frames: ${got}/${N} delivered, ${(got / s).toFixed(0)} frames/s, ${((got * frameBytes) / s / 1000).toFixed(0)} kB/s wire (921600 baud = 92 kB/s)`,
    );
  }
  // ---- 2. paced at 921600 baud: added latency
  pacing = true;
  for (const [pad, perSecond] of [
    [100, 200],
    [500, 120],
  ] as const) {
    arrivals.clear();
    lastByteAt.clear();
    const base = 10_000_000 + pad * 1000;
    const N = perSecond * 10;
    const frameBytes = encodeFrame({ type: "publish", body: { ls: 100000, ch: "telemetry", p: payload(base, pad) } }).length;
    for (let i = 0; i < N; i++) {
      framing = base + i;
      link.sendReliable({ type: "publish", body: { ch: "telemetry", p: payload(base + i, pad) } });
      framing = undefined;
      await new Promise((r) => setTimeout(r, 1000 / perSecond));
    }
    await new Promise((r) => setTimeout(r, 1000));
    const lat: number[] = [];
    for (const [seq, at] of arrivals) {
      const left = lastByteAt.get(seq);
      if (left !== undefined && seq >= base && seq < base + N) lat.push(at - left);
    }
    const load = ((perSecond * frameBytes * 10) / BAUD) * 100;
    results.push(
      `paced 921600, ${frameBytes} B frames at ${perSecond}/s (${load.toFixed(0)} % of line): ${lat.length}/${N} measured, added latency p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms, max ${Math.max(...lat).toFixed(2)} ms`,
    );
  }
  clearInterval(hb);
  results.push(
    `bridge counters: ${JSON.stringify({ framesOk: bridge.counters.framesOk, crcErrors: bridge.counters.crcErrors, resyncs: bridge.counters.resyncs, duplicates: bridge.counters.duplicates, deferred: bridge.counters.deferred })}; device retries ${link.counters.retries}`,
  );
  process.stdout.write(`${results.join("\n")}\n`);
  paced.stop();
  link.stop();
  await sub.endAsync();
  await closeSerialPort(port);
  await bridge.stop();
  await pty.close();
  await broker.close();
}

await main();
