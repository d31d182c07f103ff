import { createServer } from "node:net";
import { Aedes } from "aedes";
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, waitFor } from "@esp-fleet/common/testing";
import { disableHighWaterDedupe, isDuplicate } from "../src/dedupe.ts";
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
  it("isDuplicate: only the message last forwarded is a duplicate; a replayed queue entry always passes and is not remembered", () => {
    const client = {};
    disableHighWaterDedupe(client);
    const live = (n: number) => ({ brokerId: "b", brokerCounter: n });
    expect(isDuplicate(client, live(5))).toBe(false);
    expect(isDuplicate(client, live(5))).toBe(true); // a second matching subscription
    expect(isDuplicate(client, live(4))).toBe(false); // late, not a duplicate
    expect(isDuplicate(client, { brokerId: "c", brokerCounter: 4 })).toBe(false); // another broker's 4
    // the same message replayed from the session queue (it has its packet identifier): forwarded again
    expect(isDuplicate(client, { ...live(4), messageId: 17 })).toBe(false);
    expect(isDuplicate(client, { ...live(4), messageId: 17 })).toBe(false);
    // and the live record is untouched by it
    expect(isDuplicate(client, { brokerId: "c", brokerCounter: 4 })).toBe(true);
    expect(isDuplicate(client, {})).toBe(false);
    // Aedes's own table reads as empty and ignores writes
    const table = (client as { duplicates: Record<string, number> }).duplicates;
    table.b = 9;
    expect(table.b).toBeUndefined();
  });

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

describe("a persistent session that leaves and comes back while publishers are busy", () => {
  it("gets every message (queued ones replayed at its return, the rest live)", { timeout: 60_000 }, async () => {
    // a small router (10 slots), so that routing lags behind the publishers
    const b = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_CONCURRENCY: "10" });
    closers.push(() => b.close());
    const got = new Set<string>();
    let copies = 0;
    const subscribe = async () => {
      const s = await connect(b.url, { clientId: "backlog-sub", clean: false });
      clients.push(s);
      s.on("message", (_t, payload) => {
        copies++;
        got.add(payload.toString());
      });
      return s;
    };
    let sub = await subscribe();
    await sub.subscribeAsync("load/#", { qos: 1 });
    const pubs = await Promise.all(Array.from({ length: 20 }, (_, i) => connect(b.url, { clientId: `load-pub-${i}` })));
    clients.push(...pubs);
    const total = 20 * 400;
    const sent = pubs.flatMap((p, i) =>
      Array.from({ length: 400 }, (_, k) => p.publishAsync(`load/${i}`, `${i}:${k}`, { qos: 1 })),
    );
    // away and back twice while the publishers are at it
    for (let round = 0; round < 2; round++) {
      await new Promise((r) => setTimeout(r, 150));
      await sub.endAsync(true);
      await new Promise((r) => setTimeout(r, 100));
      sub = await subscribe();
    }
    await Promise.all(sent);
    await waitFor(() => got.size === total, `all ${total} messages at the subscriber`, 40_000);
    expect(got.size).toBe(total);
    expect(copies).toBeGreaterThanOrEqual(total);
  });
});
