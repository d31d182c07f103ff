import fc from "fast-check";
import mqtt, { type IPublishPacket, type MqttClient } from "mqtt";
import mqttPacket from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import { startTestBroker, waitFor } from "@esp-fleet/common/testing";
import type { LinkEvent } from "../src/transport.ts";
import { MqttTransport } from "../src/transports/mqtt.ts";
import { encodePublishFrame } from "../src/transports/publish-frame.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("encodePublishFrame", () => {
  it("is byte-identical to mqtt-packet's QoS 1 PUBLISH (MQTT 3.1.1) for any topic, payload, id and retain", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", minLength: 1, maxLength: 300 }),
        // 0 … 20,000 bytes: remaining length in 1, 2 and 3 bytes
        fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ minLength: 16_000, maxLength: 20_000 })),
        fc.integer({ min: 1, max: 65_535 }),
        fc.boolean(),
        (topic, payload, messageId, retain) => {
          const ours = encodePublishFrame(topic, payload, messageId, retain);
          const theirs = mqttPacket.generate({
            cmd: "publish",
            topic,
            payload: Buffer.from(payload),
            qos: 1,
            retain,
            messageId,
            dup: false,
          });
          expect(ours.equals(theirs)).toBe(true);
          expect(ours.subarray(ours.length - payload.length).equals(Buffer.from(payload))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** A device transport on a test broker plus a subscriber on its telemetry topic. */
async function rig(directPublish: boolean) {
  const broker = await startTestBroker();
  cleanups.push(() => broker.close());
  const got: { seq: number; payload: Buffer }[] = [];
  const sub = mqtt.connect(broker.url, { reconnectPeriod: 0 });
  cleanups.push(() => new Promise<void>((r) => sub.end(true, () => r())));
  sub.on("message", (_t, payload) => got.push({ seq: payload.readUInt32BE(0), payload }));
  await new Promise<void>((resolve, reject) => {
    sub.once("connect", () => sub.subscribe("LL/fridge/FRIDGE_LL_01/telemetry", { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  });
  const t = new MqttTransport({ site: "LL", kind: "fridge", dev: "FRIDGE_LL_01" }, { url: broker.url, directPublish });
  cleanups.push(() => t.close(false));
  const links: LinkEvent[] = [];
  t.onLink((e) => links.push(e));
  t.onCommand(() => undefined);
  const will = { channel: "status" as const, payload: new Uint8Array([0xa0]), qos: 1 as const, retain: true };
  t.connect({ will, keepaliveS: 30 });
  await waitFor(() => links.at(-1)?.up === true, "link up");
  const payload = (seq: number) => {
    const b = Buffer.alloc(64, seq & 0xff);
    b.writeUInt32BE(seq, 0);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  };
  return { t, got, links, will, payload, client: t.client as MqttClient };
}

describe.each([
  ["direct QoS 1 path", true],
  ["MQTT.js publish()", false],
])("MqttTransport publishing (%s)", (_name, direct) => {
  it("delivers every QoS 1 message once, in order, byte for byte; PUBACKs empty MQTT.js's outgoing store", async () => {
    const { t, got, payload, client } = await rig(direct);
    for (let seq = 0; seq < 200; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    // Registered where MQTT.js keeps unacknowledged messages (it resends them from there).
    const inflight = [...(client.outgoingStore as unknown as { _inflights: Map<number, IPublishPacket> })._inflights.values()];
    expect(inflight.length).toBe(200);
    expect(inflight.map((p) => (p.payload as Buffer).readUInt32BE(0))).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await waitFor(() => got.length >= 200, "200 messages");
    expect(got.map((g) => g.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(got.every((g) => g.payload.equals(Buffer.from(payload(g.seq))))).toBe(true);
    await waitFor(() => Object.keys(client.outgoing).length === 0, "every PUBACK");
    expect((client.outgoingStore as unknown as { _inflights: Map<number, unknown> })._inflights.size).toBe(0);
    expect(t.publishErrors).toBe(0);
  });

  it("unacknowledged messages survive a dropped link and are resent, in order, before anything newer", async () => {
    const { t, got, links, will, payload, client } = await rig(direct);
    for (let seq = 0; seq < 50; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    // The link drops before any PUBACK can be read (the bytes may or may not have reached the broker).
    client.stream.destroy();
    await waitFor(() => links.at(-1)?.up === false, "link down");
    t.connect({ will, keepaliveS: 30 });
    await waitFor(() => links.at(-1)?.up === true, "link up again");
    for (let seq = 50; seq < 60; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    await waitFor(() => new Set(got.map((g) => g.seq)).size >= 60, "all 60 messages");
    const firsts: number[] = [];
    for (const g of got) if (!firsts.includes(g.seq)) firsts.push(g.seq);
    expect(firsts).toEqual(Array.from({ length: 60 }, (_, i) => i));
    await waitFor(() => Object.keys(client.outgoing).length === 0, "every PUBACK");
  });
});
