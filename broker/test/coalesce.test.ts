import { Writable } from "node:stream";
import { connect as netConnect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import mqttPacket from "mqtt-packet";
import type { MqttClient } from "mqtt";
import { coalesceWrites, raiseWriteHighWater } from "../src/coalesce.ts";
import { closeClient, connect, startBroker, type TestBrokerHandle } from "./helpers.ts";

/** A writable that records each batch the stream hands down (one `_writev` = one syscall on a socket). */
function recorder(highWaterMark = 16 * 1024) {
  const batches: string[][] = [];
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      batches.push([chunk.toString()]);
      setImmediate(cb);
    },
    writev(chunks, cb) {
      batches.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      setImmediate(cb);
    },
  });
  return { stream, batches };
}

const turn = () => new Promise((r) => setImmediate(r));

describe("coalesceWrites", () => {
  it("sends what one event-loop turn wrote, from several immediates, as one batch in order", async () => {
    const { stream, batches } = recorder();
    coalesceWrites(stream);
    // Aedes writes each delivery from its own setImmediate; mqtt-packet corks per packet and uncorks on nextTick
    for (const p of ["a", "b", "c"])
      setImmediate(() => {
        stream.cork();
        stream.write(`${p}1`);
        stream.write(`${p}2`);
        process.nextTick(() => stream.uncork());
      });
    await turn();
    await turn();
    await turn();
    expect(batches).toEqual([["a1", "a2", "b1", "b2", "c1", "c2"]]);
    stream.write("d");
    await turn();
    await turn();
    expect(batches).toEqual([["a1", "a2", "b1", "b2", "c1", "c2"], ["d"]]);
  });

  it("flushes every stream written in a turn from one immediate, each as its own batch", async () => {
    const streams = [recorder(), recorder(), recorder()];
    for (const r of streams) coalesceWrites(r.stream);
    const realSetImmediate = globalThis.setImmediate;
    let scheduled = 0;
    globalThis.setImmediate = ((...args: Parameters<typeof setImmediate>) => {
      scheduled++;
      return realSetImmediate(...args);
    }) as typeof setImmediate;
    try {
      streams.forEach((r, i) => {
        r.stream.write(`${i}a`);
        r.stream.write(`${i}b`);
      });
    } finally {
      globalThis.setImmediate = realSetImmediate;
    }
    expect(scheduled).toBe(1);
    await turn();
    expect(streams.map((r) => r.batches)).toEqual([[["0a", "0b"]], [["1a", "1b"]], [["2a", "2b"]]]);
    // and the next turn's writes are the next batch
    streams[1]!.stream.write("1c");
    await turn();
    await turn();
    expect(streams[1]!.batches).toEqual([["1a", "1b"], ["1c"]]);
  });

  it("still flushes the other streams of a turn when one stream's flush throws", async () => {
    const bad = recorder();
    const good = recorder();
    coalesceWrites(bad.stream);
    coalesceWrites(good.stream);
    bad.stream.uncork = () => {
      throw new Error("uncork failed");
    };
    const thrown = new Promise<unknown>((resolve) => process.once("uncaughtException", resolve));
    bad.stream.write("x");
    good.stream.write("y");
    expect(((await thrown) as Error).message).toBe("uncork failed");
    await turn();
    await turn();
    expect(good.batches).toEqual([["y"]]);
  });

  it("keeps back-pressure: write() returns false past the high-water mark and 'drain' follows the flush", async () => {
    const { stream, batches } = recorder(8);
    coalesceWrites(stream);
    expect(stream.write("1234")).toBe(true);
    expect(stream.write("5678")).toBe(false); // 8 bytes buffered (corked) = the mark
    const drained = new Promise((r) => stream.once("drain", r));
    await drained;
    expect(batches).toEqual([["1234", "5678"]]);
  });

  it("raiseWriteHighWater: write() returns false only past the higher mark, and 'drain' still follows", async () => {
    const { stream, batches } = recorder(8);
    raiseWriteHighWater(coalesceWrites(stream), 16);
    expect(stream.write("1234")).toBe(true);
    expect(stream.write("5678")).toBe(true); // 8 bytes: the stream's own mark refuses, ours does not
    expect(stream.write("abcdefgh")).toBe(false); // 16 bytes buffered = our mark
    const drained = new Promise((r) => stream.once("drain", r));
    await drained;
    expect(batches).toEqual([["1234", "5678", "abcdefgh"]]);
  });

  it("flushes on end() even while corked", async () => {
    const { stream, batches } = recorder();
    coalesceWrites(stream);
    stream.write("x");
    const finished = new Promise((r) => stream.once("finish", r));
    stream.end("y");
    await finished;
    expect(batches.flat()).toEqual(["x", "y"]);
  });
});

/** Subscribe over a raw socket and return every byte the broker sends after the SUBACK. */
async function rawSubscriber(port: number, topic: string): Promise<{ bytes(): Buffer; sock: Socket }> {
  const sock = netConnect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  sock.on("data", (d: Buffer) => chunks.push(d));
  await new Promise((r) => sock.once("connect", r));
  sock.write(
    mqttPacket.generate({
      cmd: "connect",
      clientId: `raw-${topic}`,
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepalive: 0,
    }),
  );
  sock.write(mqttPacket.generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos: 0 }] }));
  const header = 4 + 5; // CONNACK (4 bytes) + SUBACK for one filter (5 bytes)
  while (Buffer.concat(chunks).length < header) await new Promise((r) => setTimeout(r, 10));
  return { bytes: () => Buffer.concat(chunks).subarray(header), sock };
}

/** `pub` publishes n QoS 1 messages of 200 bytes numbered 0…n-1 to `topic` back to back; the numbers `sub`
 * received, in arrival order, once it has n (or after 30 s). */
async function numberedBurst(pub: MqttClient, sub: MqttClient, topic: string, n: number): Promise<number[]> {
  const got: number[] = [];
  sub.on("message", (t, p) => t === topic && got.push(p.readUInt32BE(0)));
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(200);
    b.writeUInt32BE(i, 0);
    pub.publish(topic, b, { qos: 1 });
  }
  const deadline = Date.now() + 30_000;
  while (got.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return got;
}

describe.each(["on", "off"])("broker with MQTT_COALESCE_WRITES=%s", (setting) => {
  let h: TestBrokerHandle;
  beforeAll(async () => {
    h = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_WS_ENABLED: "off", MQTT_COALESCE_WRITES: setting });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("sends the subscriber exactly the byte stream of the published packets, in order", async () => {
    const sub = await rawSubscriber(h.broker.ports.mqtt, "eq/t");
    const pub = await connect(h.url, { clientId: "eq-pub" });
    const n = 3000;
    const expected: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const payload = Buffer.from(`message ${i} `.padEnd(40 + (i % 200), "x"));
      pub.publish("eq/t", payload, { qos: 0 });
      expected.push(mqttPacket.generate({ cmd: "publish", topic: "eq/t", payload, qos: 0, dup: false, retain: false }));
    }
    const want = Buffer.concat(expected);
    const deadline = Date.now() + 20_000;
    while (sub.bytes().length < want.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sub.bytes().equals(want)).toBe(true);
    sub.sock.destroy();
    await closeClient(pub);
  });

  it("delivers QoS 1 in order with no loss to an MQTT.js subscriber", async () => {
    const sub = await connect(h.url, { clientId: "q1-sub" });
    await sub.subscribeAsync("q1/t", { qos: 1 });
    const pub = await connect(h.url, { clientId: "q1-pub" });
    const count = async (c: typeof h.broker.metrics.messagesIn) =>
      (await c.get()).values.find((v) => v.labels.qos === "1")?.value ?? 0;
    const [in0, out0] = [await count(h.broker.metrics.messagesIn), await count(h.broker.metrics.messagesOut)];
    const n = 5000;
    expect(await numberedBurst(pub, sub, "q1/t", n)).toEqual(Array.from({ length: n }, (_, i) => i));
    // the per-QoS counters (bound to their label once) count every message in and out
    expect(await count(h.broker.metrics.messagesIn)).toBe(in0 + n);
    expect(await count(h.broker.metrics.messagesOut)).toBe(out0 + n);
    await Promise.all([closeClient(sub), closeClient(pub)]);
  });
});

// A subscriber taking a fast stream: with Node's 16 KB mark, one turn's corked deliveries pass it and every
// later delivery of that turn holds its routing slot until 'drain' (docs/broker.md, "Deliveries and
// 'drain'"); with the default 512 KB none waits. Same messages, same order either way.
describe.each([
  ["16", true],
  ["512", false],
])("broker with MQTT_WRITE_HIGH_WATER_KB=%s", (kb, waits) => {
  let h: TestBrokerHandle;
  beforeAll(async () => {
    h = await startBroker({
      MQTT_ANONYMOUS: "full",
      MQTT_WS_ENABLED: "off",
      MQTT_CONCURRENCY: "1000",
      MQTT_WRITE_HIGH_WATER_KB: kb,
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it(`delivers a QoS 1 burst in order${waits ? ", its deliveries waiting for 'drain'" : " without waiting for 'drain'"}`, async () => {
    const sub = await connect(h.url, { clientId: `hw-sub-${kb}`, clean: false });
    await sub.subscribeAsync("hw/t", { qos: 1 });
    const pub = await connect(h.url, { clientId: `hw-pub-${kb}` });
    const n = 3000;
    expect(await numberedBurst(pub, sub, "hw/t", n)).toEqual(Array.from({ length: n }, (_, i) => i));
    const drainWaits = (await h.broker.metrics.drainWaits.get()).values[0]?.value ?? 0;
    if (waits) expect(drainWaits).toBeGreaterThan(0);
    else expect(drainWaits).toBe(0);
    await Promise.all([closeClient(sub), closeClient(pub)]);
  });
});
