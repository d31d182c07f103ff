import mqtt, { type IPublishPacket, type MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { startTestBroker, waitFor } from "@esp-fleet/common/testing";
import type { LinkEvent } from "../src/transport.ts";
import { InflightWindow } from "../src/transports/inflight.ts";
import { MqttTransport } from "../src/transports/mqtt.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A device transport on a test broker plus a subscriber on its telemetry topic. */
async function rig() {
  const broker = await startTestBroker();
  cleanups.push(() => broker.close());
  const got: { seq: number; payload: Buffer }[] = [];
  const sub = mqtt.connect(broker.url, { reconnectPeriod: 0 });
  cleanups.push(() => new Promise<void>((r) => sub.end(true, () => r())));
  sub.on("message", (_t, payload) => got.push({ seq: payload.readUInt32BE(0), payload }));
  await new Promise<void>((resolve, reject) => {
    sub.once("connect", () => sub.subscribe("LL/fridge/FRIDGE_LL_01/telemetry", { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  });
  const t = new MqttTransport({ site: "LL", kind: "fridge", dev: "FRIDGE_LL_01" }, { url: broker.url });
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

describe("MqttTransport publishing (QoS 1 through MQTT.js)", () => {
  it("delivers every QoS 1 message once, in order, byte for byte; PUBACKs empty MQTT.js's outgoing store", async () => {
    const { t, got, payload, client } = await rig();
    for (let seq = 0; seq < 200; seq++) t.publish("telemetry", payload(seq), { qos: 1, retain: false });
    // Registered where MQTT.js keeps unacknowledged messages (it resends them from there).
    const window = client.outgoingStore as unknown as InflightWindow;
    expect(window).toBeInstanceOf(InflightWindow);
    const inflight = window.stored() as IPublishPacket[];
    expect(inflight.length).toBe(200);
    expect(inflight.map((p) => (p.payload as Buffer).readUInt32BE(0))).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await waitFor(() => got.length >= 200, "200 messages");
    expect(got.map((g) => g.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(got.every((g) => g.payload.equals(Buffer.from(payload(g.seq))))).toBe(true);
    await waitFor(() => Object.keys(client.outgoing).length === 0, "every PUBACK");
    expect(window.size).toBe(0);
    expect(t.publishErrors).toBe(0);
    // The window is empty again, so the next message takes the lowest identifier.
    t.publish("telemetry", payload(200), { qos: 1, retain: false });
    expect(window.stored().map((p) => p.messageId)).toEqual([1]);
  });

  it("unacknowledged messages survive a dropped link and are resent, in order, before anything newer", async () => {
    const { t, got, links, will, payload, client } = await rig();
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
