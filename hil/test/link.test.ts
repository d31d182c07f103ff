import { describe, expect, it } from "vitest";
import { ManualClock } from "@esp-fleet/common/clock";
import { createRng } from "@esp-fleet/common/random";
import { FrameReader } from "../src/frame-reader.ts";
import { LinkEndpoint } from "../src/link.ts";
import { LineNoise } from "../src/noise.ts";
import type { Frame } from "../src/frames.ts";

/** Two link endpoints joined by a (possibly noisy) wire, driven by a manual clock. */
function pair(opts: { noise?: number; bursts?: number; maxRetries?: number } = {}) {
  const clock = new ManualClock();
  const rng = createRng(42);
  const noiseAB = new LineNoise(rng.fork("ab"), { bitErrorRate: opts.noise ?? 0, burstProb: opts.bursts ?? 0 });
  const noiseBA = new LineNoise(rng.fork("ba"), { bitErrorRate: opts.noise ?? 0, burstProb: opts.bursts ?? 0 });
  const readerA = new FrameReader();
  const readerB = new FrameReader();
  const gotA: Frame[] = [];
  const gotB: Frame[] = [];
  let cut = false;
  // delivery is deferred through the clock, like a real wire
  const a: LinkEndpoint = new LinkEndpoint({
    clock,
    retryMs: 50,
    maxRetries: opts.maxRetries ?? 50,
    write: (bytes) => {
      if (cut) return;
      const wire = noiseAB.apply(bytes);
      clock.setTimeout(() => {
        for (const ev of readerB.push(wire))
          if (ev.type === "frame") {
            const f = b.receive(ev.frame);
            if (f) gotB.push(f);
          }
      }, 1);
    },
  });
  const b: LinkEndpoint = new LinkEndpoint({
    clock,
    retryMs: 50,
    write: (bytes) => {
      if (cut) return;
      const wire = noiseBA.apply(bytes);
      clock.setTimeout(() => {
        for (const ev of readerA.push(wire))
          if (ev.type === "frame") {
            const f = a.receive(ev.frame);
            if (f) gotA.push(f);
          }
      }, 1);
    },
  });
  return { clock, a, b, gotA, gotB, readerA, readerB, noiseAB, noiseBA, setCut: (v: boolean) => (cut = v) };
}

const pub = (i: number) => ({
  type: "publish" as const,
  body: { ch: "telemetry" as const, p: Uint8Array.of(i & 0xff, i >> 8, 7) },
});

describe("LinkEndpoint", () => {
  it("delivers in order with acks on a clean line; nothing retried", () => {
    const { clock, a, b, gotB } = pair();
    for (let i = 0; i < 100; i++) a.sendReliable(pub(i));
    clock.advance(1000);
    expect(gotB.map((f) => (f.type === "publish" ? f.body.ls : -1))).toEqual([...Array(100).keys()]);
    expect(a.counters).toMatchObject({ sent: 100, acked: 100, retries: 0, lost: 0 });
    expect(b.counters).toMatchObject({ received: 100, duplicates: 0 });
    expect(a.backlog).toBe(0);
  });

  it("with bit flips and garbage bursts, delivers every frame exactly once and accounts for retries", () => {
    const { clock, a, b, gotB, readerB, readerA, noiseAB } = pair({ noise: 1e-3, bursts: 0.05 });
    for (let i = 0; i < 300; i++) a.sendReliable(pub(i));
    clock.advance(120_000);
    const ls = gotB.map((f) => (f.type === "publish" ? f.body.ls : -1)).sort((x, y) => x - y);
    expect(ls).toEqual([...Array(300).keys()]);
    expect(noiseAB.counters.bitFlips).toBeGreaterThan(0);
    expect(a.counters.retries).toBeGreaterThan(0);
    expect(a.counters).toMatchObject({ sent: 300, acked: 300, lost: 0 });
    // every transmission is accounted for at the receiver: delivered, duplicate, or rejected on the line
    const transmissions = a.counters.sent + a.counters.retries;
    const rejected = readerB.counters.crcErrors + readerB.counters.malformed + readerB.counters.oversize;
    expect(b.counters.received + b.counters.duplicates).toBeLessThanOrEqual(transmissions);
    expect(b.counters.received + b.counters.duplicates + rejected).toBeGreaterThanOrEqual(transmissions);
    expect(readerA.counters.bodyErrors + readerB.counters.bodyErrors).toBe(0);
  });

  it("queues while the peer is away and sends everything again when it says hello", () => {
    const { clock, a, b, gotB, setCut } = pair({ maxRetries: Infinity });
    setCut(true);
    for (let i = 0; i < 40; i++) a.sendReliable(pub(i));
    clock.advance(30_000);
    expect(gotB).toHaveLength(0);
    expect(a.backlog).toBe(40);
    setCut(false);
    a.receive({ type: "hello", body: { role: "host", proto: 1, sid: 99 } });
    clock.advance(5_000);
    expect(new Set(gotB.map((f) => (f.type === "publish" ? f.body.ls : -1))).size).toBe(40);
    expect(b.counters.received).toBe(40);
    expect(a.backlog).toBe(0);
  });

  it("gives up after maxRetries and counts the frame lost", () => {
    const { clock, a, setCut } = pair({ maxRetries: 3 });
    setCut(true);
    a.sendReliable(pub(1));
    clock.advance(10_000);
    expect(a.counters).toMatchObject({ sent: 1, retries: 3, lost: 1 });
    expect(a.backlog).toBe(0);
  });

  it("forgets seen numbers only when the peer's session id changes", () => {
    const { b } = pair();
    const f = (ls: number): Frame => ({ type: "publish", body: { ls, ch: "log", p: Uint8Array.of(65) } });
    expect(b.receive({ type: "hello", body: { role: "host", proto: 1, sid: 1 } })).toBeDefined();
    expect(b.receive(f(0))).toBeDefined();
    expect(b.receive(f(0))).toBeUndefined();
    b.receive({ type: "hello", body: { role: "host", proto: 1, sid: 1 } });
    expect(b.receive(f(0))).toBeUndefined();
    b.receive({ type: "hello", body: { role: "host", proto: 1, sid: 2 } });
    expect(b.receive(f(0))).toBeDefined();
  });
});
