import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import fc from "fast-check";
import mqtt from "mqtt";
import mqttPacket, { type Packet } from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import { startTestBroker, waitFor } from "@esp-fleet/common/testing";
import type { LinkEvent } from "../src/transport.ts";
import { publishFrame, SessionTransport, topicField } from "../src/transports/session.ts";
import { mqttTransportFactory, MqttTransport } from "../src/transports/mqtt.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ADDR = { site: "LL", kind: "fridge", dev: "FRIDGE_LL_01" } as const;
const WILL = { channel: "status" as const, payload: new Uint8Array([0xa1, 0x61, 0x73, 0x63, 0x6f, 0x66, 0x66]), qos: 1 as const, retain: true };

function payload(seq: number): Uint8Array {
  const b = Buffer.alloc(64, seq & 0xff);
  b.writeUInt32BE(seq, 0);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A session transport on `url`, its link events, and the commands it was given. */
function device(url: string, keepaliveS = 30) {
  const t = new SessionTransport(ADDR, { url, closeTimeoutMs: 2000 });
  cleanups.push(async () => void (await t.close(false)));
  const links: LinkEvent[] = [];
  const commands: { name: string; payload: Buffer }[] = [];
  t.onLink((e) => links.push(e));
  t.onCommand((name, p) => commands.push({ name, payload: Buffer.from(p) }));
  const connect = () => t.connect({ will: WILL, keepaliveS });
  return { t, links, commands, connect };
}

async function subscriber(url: string, topic: string) {
  const sub = mqtt.connect(url, { reconnectPeriod: 0 });
  cleanups.push(() => new Promise<void>((r) => sub.end(true, () => r())));
  const got: { topic: string; payload: Buffer; seq: number }[] = [];
  sub.on("message", (t, p) => got.push({ topic: t, payload: p, seq: p.length >= 4 ? p.readUInt32BE(0) : -1 }));
  await new Promise<void>((resolve, reject) => {
    sub.once("connect", () => sub.subscribe(topic, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  });
  return { sub, got };
}

/** Connects a device and waits for its link to come up. */
async function bringUp<D extends ReturnType<typeof device>>(d: D): Promise<D> {
  d.connect();
  await waitFor(() => d.links.at(-1)?.up === true, "link up");
  return d;
}

/** An Aedes test broker, a QoS 1 subscriber on `topic` (default the device's telemetry), and the device online on it. */
async function onlineDevice(topic = "LL/fridge/FRIDGE_LL_01/telemetry") {
  const broker = await startTestBroker();
  cleanups.push(() => broker.close());
  const { got } = await subscriber(broker.url, topic);
  const d = await bringUp(device(broker.url));
  return { ...d, broker, got };
}

/** A scripted broker on a raw socket: `onPacket` sees what the device sends and answers with raw bytes. */
async function fakeBroker(onPacket: (p: Packet, reply: (bytes: Buffer) => void, sock: Socket) => void) {
  const sockets: Socket[] = [];
  const server: Server = createServer((sock) => {
    sockets.push(sock);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on("packet", (p: Packet) => onPacket(p, (b) => sock.write(b), sock));
    sock.on("data", (d) => parser.parse(d));
    sock.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const connack = (returnCode = 0, sessionPresent = false) => mqttPacket.generate({ cmd: "connack", returnCode, sessionPresent });

describe("publishFrame", () => {
  it("writes exactly the bytes of mqtt-packet's generate for the same PUBLISH", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 80 }),
        fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 16_000, max: 17_000 }).map((n) => new Uint8Array(n).fill(7))),
        fc.constantFrom(0 as const, 1 as const),
        fc.boolean(),
        fc.integer({ min: 1, max: 65535 }),
        (topic, body, qos, retain, id) => {
          const expected = mqttPacket.generate({
            cmd: "publish",
            topic,
            payload: Buffer.from(body),
            qos,
            retain,
            dup: false,
            ...(qos > 0 ? { messageId: id } : {}),
          });
          expect(publishFrame(topicField(topic), body, qos, retain, id).equals(expected)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("SessionTransport against Aedes", () => {
  it("delivers every QoS 1 message once, in order, byte for byte; the PUBACKs empty the in-flight table", async () => {
    const { t, links, got } = await onlineDevice();
    expect(links[0]).toEqual({ up: true, sessionPresent: false });
    for (let seq = 0; seq < 500; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    expect(t.inflight).toBe(500);
    await waitFor(() => got.length >= 500, "500 messages");
    expect(got.map((g) => g.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(got.every((g) => g.payload.equals(Buffer.from(payload(g.seq))))).toBe(true);
    await waitFor(() => t.inflight === 0, "every PUBACK");
    expect(t.publishErrors).toBe(0);
  });

  it("unacknowledged messages survive a dropped link and are resent, in order, before anything newer", async () => {
    const { t, links, got, connect } = await onlineDevice();
    for (let seq = 0; seq < 50; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    t.socket?.destroy(); // before any PUBACK can be read (the bytes may or may not have reached the broker)
    await waitFor(() => links.at(-1)?.up === false, "link down");
    expect(t.inflight).toBe(50);
    connect();
    await waitFor(() => links.at(-1)?.up === true, "link up again");
    expect(links.at(-1)).toEqual({ up: true, sessionPresent: true });
    for (let seq = 50; seq < 60; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    await waitFor(() => new Set(got.map((g) => g.seq)).size >= 60, "all 60 messages");
    const firsts: number[] = [];
    for (const g of got) if (!firsts.includes(g.seq)) firsts.push(g.seq);
    expect(firsts).toEqual(Array.from({ length: 60 }, (_, i) => i));
    await waitFor(() => t.inflight === 0, "every PUBACK");
  });

  it("receives commands on its persistent subscription, also those queued while it was away, and acknowledges them", async () => {
    const { broker, commands, links, t, connect } = await onlineDevice();
    const ops = mqtt.connect(broker.url, { reconnectPeriod: 0 });
    cleanups.push(() => new Promise<void>((r) => ops.end(true, () => r())));
    await new Promise((r) => ops.once("connect", r));
    // the SUBACK has arrived once a command sent now is delivered
    await waitFor(async () => {
      await ops.publishAsync("LL/fridge/FRIDGE_LL_01/cmd/status", Buffer.from([0xa0]), { qos: 1 });
      return commands.length > 0;
    }, "first command");
    expect(commands[0]).toEqual({ name: "status", payload: Buffer.from([0xa0]) });
    t.socket?.destroy();
    await waitFor(() => links.at(-1)?.up === false, "link down");
    await ops.publishAsync("LL/fridge/FRIDGE_LL_01/cmd/reboot", Buffer.from([0xa1, 0x61, 0x78, 0x01]), { qos: 1 });
    await ops.publishAsync("LL/fridge/FRIDGE_LL_01/cmd/not/a/command", Buffer.from([0xa0]), { qos: 1 });
    const before = commands.length;
    connect();
    await waitFor(() => commands.length > before, "the queued command");
    expect(commands.at(-1)).toEqual({ name: "reboot", payload: Buffer.from([0xa1, 0x61, 0x78, 0x01]) });
    expect(commands.filter((c) => c.name === "not/a/command")).toEqual([]);
    // It was acknowledged: after another reconnect the broker has nothing left to resend.
    const delivered = commands.length;
    t.socket?.destroy();
    await waitFor(() => links.at(-1)?.up === false, "link down");
    connect();
    await waitFor(() => links.at(-1)?.up === true, "link up");
    await new Promise((r) => setTimeout(r, 300));
    expect(commands.length).toBe(delivered);
  });

  it("close(false) drops the link without DISCONNECT (the broker publishes the will); close(true) discards it", async () => {
    const { broker, got, ...a } = await onlineDevice("LL/fridge/+/status");
    a.t.publish("telemetry", payload(1), { qos: 1, retain: false });
    await a.t.close(true);
    expect(a.t.inflight).toBe(0);
    const b = await bringUp(device(broker.url));
    await b.t.close(false);
    await waitFor(() => got.length >= 1, "the will");
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toHaveLength(1); // one will: b's; a closed cleanly
    expect(got[0]!.payload.equals(Buffer.from(WILL.payload))).toBe(true);
    // no link event after a close
    expect(a.links.filter((l) => !l.up)).toEqual([]);
    expect(b.links.filter((l) => !l.up)).toEqual([]);
  });
});

describe("SessionTransport against a scripted broker", () => {
  it("reads PUBACKs split across reads or mixed with other packets exactly like whole ones", async () => {
    let sock: Socket | undefined;
    const published: number[] = [];
    const url = await fakeBroker((p, reply, s) => {
      sock = s;
      if (p.cmd === "connect") reply(connack());
      if (p.cmd === "publish") published.push(p.messageId as number);
    });
    const { t, commands } = await bringUp(device(url));
    for (let seq = 0; seq < 40; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    await waitFor(() => published.length === 40, "40 publishes");
    // PUBACKs 1–10 whole (the fast path), 11–20 one byte per write, 21–40 around a command PUBLISH cut in two
    const ack = (id: number) => mqttPacket.generate({ cmd: "puback", messageId: id });
    sock!.write(Buffer.concat(published.slice(0, 10).map(ack)));
    await waitFor(() => t.inflight === 30, "10 acknowledged");
    for (const b of Buffer.concat(published.slice(10, 20).map(ack))) {
      sock!.write(Buffer.from([b]));
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitFor(() => t.inflight === 20, "20 acknowledged");
    const cmd = mqttPacket.generate({ cmd: "publish", topic: "LL/fridge/FRIDGE_LL_01/cmd/status", payload: Buffer.from([0xa0]), qos: 0, retain: false, dup: false });
    const mixed = Buffer.concat([...published.slice(20, 30).map(ack), cmd, ...published.slice(30).map(ack)]);
    sock!.write(mixed.subarray(0, 45));
    await new Promise((r) => setTimeout(r, 20));
    sock!.write(mixed.subarray(45));
    await waitFor(() => t.inflight === 0, "all acknowledged");
    expect(commands).toEqual([{ name: "status", payload: Buffer.from([0xa0]) }]);
  });

  it("close() reports the QoS 1 messages it discards unacknowledged", async () => {
    let acked = 0;
    const url = await fakeBroker((p, reply) => {
      if (p.cmd === "connect") reply(connack());
      // a broker too busy to answer: the first two publishes acknowledged, the other three never
      if (p.cmd === "publish" && acked < 2) {
        acked++;
        reply(mqttPacket.generate({ cmd: "puback", messageId: p.messageId as number }));
      }
    });
    const { t } = await bringUp(device(url));
    for (let seq = 0; seq < 5; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    await waitFor(() => t.inflight === 3, "two acknowledged");
    // a clean close waits (closeTimeoutMs, 2 s here) for the last PUBACKs, then gives up on them
    expect(await t.close(true)).toBe(3);
    expect(t.inflight).toBe(0);
  });

  it("a refused CONNECT is a link-down event with the broker's reason", async () => {
    const url = await fakeBroker((p, reply) => {
      if (p.cmd === "connect") reply(connack(5));
    });
    const { links, connect } = device(url);
    connect();
    await waitFor(() => links.length > 0, "a link event");
    expect(links).toEqual([{ up: false, reason: "connection refused: not authorized" }]);
  });

  it("sends no PINGREQ while its PUBLISHes are acknowledged, and pings again once they stop (MQTT 3.1.1 §3.1.2.10)", async () => {
    let pings = 0;
    let packetsAfterConnect = 0;
    let lastPacketAt = 0;
    let longestGapMs = 0;
    const url = await fakeBroker((p, reply) => {
      if (p.cmd === "connect") {
        lastPacketAt = performance.now();
        return reply(connack());
      }
      // the longest silence the broker sees from the device: never past its keep-alive (2 s)
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - lastPacketAt);
      lastPacketAt = now;
      packetsAfterConnect++;
      if (p.cmd === "publish") reply(mqttPacket.generate({ cmd: "puback", messageId: p.messageId as number }));
      if (p.cmd === "pingreq") {
        pings++;
        reply(mqttPacket.generate({ cmd: "pingresp" }));
      }
    });
    const { t } = await bringUp(device(url, 2));
    const started = performance.now();
    let seq = 0;
    while (performance.now() - started < 3500) {
      t.publish("telemetry", payload(seq++), { qos: 1, retain: false });
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(packetsAfterConnect).toBeGreaterThan(10);
    expect(pings).toBe(0);
    // idle now: PINGREQs again, and the broker never sees a silence long enough to drop the device
    await waitFor(() => pings >= 2, "PINGREQs once the device is idle", 8000);
    // checked every half period, a ping goes out at most one period (plus the timer's lateness) after the last
    // acknowledged packet; the broker's limit is one and a half periods (§3.1.2.10), which is what must hold
    expect(longestGapMs).toBeLessThan(1.5 * 2000);
  });

  it("sends PINGREQs, and drops a link whose broker stops answering them", async () => {
    let answer = true;
    let pings = 0;
    const url = await fakeBroker((p, reply) => {
      if (p.cmd === "connect") reply(connack());
      if (p.cmd === "pingreq") {
        pings++;
        if (answer) reply(mqttPacket.generate({ cmd: "pingresp" }));
      }
    });
    const { links } = await bringUp(device(url, 1));
    await waitFor(() => pings >= 2, "two PINGREQs answered", 6000);
    expect(links).toHaveLength(1);
    answer = false;
    await waitFor(() => links.at(-1)?.up === false, "link down", 6000);
    expect(links.at(-1)).toEqual({ up: false, reason: "keepalive timeout" });
  });
});

describe("mqttTransportFactory", () => {
  it("gives plain-TCP URLs the session client unless MQTT.js is asked for, and TLS/WebSocket URLs MQTT.js", () => {
    expect(mqttTransportFactory({ url: "mqtt://localhost:1883" })(ADDR)).toBeInstanceOf(SessionTransport);
    expect(mqttTransportFactory({ url: "tcp://localhost:1883" })(ADDR)).toBeInstanceOf(SessionTransport);
    expect(mqttTransportFactory({ url: "mqtt://localhost:1883", client: "mqttjs" })(ADDR)).toBeInstanceOf(MqttTransport);
    expect(mqttTransportFactory({ url: "ws://localhost:9001" })(ADDR)).toBeInstanceOf(MqttTransport);
    expect(mqttTransportFactory({ url: "mqtts://localhost:8883" })(ADDR)).toBeInstanceOf(MqttTransport);
  });
});
