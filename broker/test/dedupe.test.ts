import { createServer } from "node:net";
import { Aedes } from "aedes";
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, waitFor } from "@esp-fleet/common/testing";
import { closeClient, connect, startBroker } from "./helpers.ts";

interface Persistence {
  subscriptionsByTopic(topic: string): Promise<unknown[]>;
}

/** Make the persistence answer slowly for one topic, as a persistence with I/O (Redis) does: a QoS 1
 * publish to it waits there before routing. Resolves when such a lookup has started. */
function slowLookupsFor(aedes: Aedes, topic: string, ms: number): Promise<void> {
  const persistence = (aedes as unknown as { persistence: Persistence }).persistence;
  const lookup = persistence.subscriptionsByTopic.bind(persistence);
  return new Promise((started) => {
    persistence.subscriptionsByTopic = async (t: string) => {
      if (t !== topic) return lookup(t);
      started();
      await new Promise((r) => setTimeout(r, ms));
      return lookup(t);
    };
  });
}

const clients: MqttClient[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map(closeClient));
  for (const close of closers.splice(0).reverse()) await close();
});

/** A QoS 1 message whose routing waits for the persistence, overtaken by a QoS 0 one published after it:
 * returns the topics a subscriber of both received, in order. */
async function overtake(url: string, aedes: Aedes): Promise<string[]> {
  const got: string[] = [];
  const sub = await connect(url, { clientId: "sub", clean: false });
  clients.push(sub);
  sub.on("message", (topic) => got.push(topic));
  await sub.subscribeAsync("t/#", { qos: 1 });
  const a = await connect(url, { clientId: "a" });
  const b = await connect(url, { clientId: "b" });
  clients.push(a, b);
  const waiting = slowLookupsFor(aedes, "t/slow", 100);
  const acked = a.publishAsync("t/slow", "1", { qos: 1 });
  await waiting; // its number is taken; it waits for the persistence
  await b.publishAsync("t/fast", "2", { qos: 0 }); // numbered after it, routed before it
  await acked;
  await new Promise((r) => setTimeout(r, 300));
  return got;
}

describe("duplicate suppression (dedupe.ts)", () => {
  it("plain Aedes 1.2 loses a message overtaken in routing: its publisher was acknowledged, the subscriber never gets it", async () => {
    const aedes = await Aedes.createBroker();
    const server = createServer(aedes.handle);
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    closers.push(async () => {
      await new Promise<void>((r) => aedes.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    });
    // moscajs/aedes#994: the high-water mark drops the older message
    expect(await overtake(`mqtt://127.0.0.1:${port}`, aedes)).toEqual(["t/fast"]);
  });

  it("the broker forwards a message overtaken in routing", async () => {
    const b = await startBroker({ MQTT_ANONYMOUS: "full" });
    closers.push(() => b.close());
    expect((await overtake(b.url, b.broker.aedes)).sort()).toEqual(["t/fast", "t/slow"]);
  });

  it("a message matching two of a client's subscriptions is forwarded to it once, at either QoS", async () => {
    const b = await startBroker({ MQTT_ANONYMOUS: "full" });
    closers.push(() => b.close());
    const got: string[] = [];
    const sub = await connect(b.url, { clientId: "overlap", clean: false });
    const other = await connect(b.url, { clientId: "other" });
    const pub = await connect(b.url, { clientId: "pub" });
    clients.push(sub, other, pub);
    sub.on("message", (topic, payload) => got.push(`${topic}=${payload.toString()}`));
    let otherGot = 0;
    other.on("message", () => otherGot++);
    await sub.subscribeAsync({ "t/#": { qos: 1 }, "t/+": { qos: 1 }, "t/x": { qos: 0 } });
    await other.subscribeAsync("t/#", { qos: 1 });
    for (let i = 0; i < 20; i++) await pub.publishAsync(i % 2 ? "t/x" : "t/y", String(i), { qos: (i % 2) as 0 | 1 });
    await waitFor(() => got.length >= 20 && otherGot >= 20, "20 messages at each subscriber");
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `${i % 2 ? "t/x" : "t/y"}=${i}`));
    expect(otherGot).toBe(20);
  });
});
