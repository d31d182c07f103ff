import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import { describe, expect, it } from "vitest";
import { waitFor } from "@esp-fleet/common/testing";
import { closedAfterEach, connect, startBroker } from "./helpers.ts";

const { clients, brokers } = closedAfterEach();

interface AedesClient {
  deliverQoS(packet: object, cb: () => void): void;
}

/** Deliver one message to a connected subscriber through Aedes's client object, as the router does; how
 * many event-loop turns later its callback (which frees the routing slot) came. */
function turnsUntilFreed(aedes: object, clientId: string, packet: object): Promise<number> {
  const client = (aedes as { clients: Record<string, AedesClient> }).clients[clientId]!;
  let turns = 0;
  let stop = false;
  const tick = () => {
    if (stop) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return new Promise((resolve) =>
    client.deliverQoS(packet, () => {
      stop = true;
      resolve(turns);
    }),
  );
}

const message = (n: number, qos: 0 | 1) => ({
  cmd: "publish",
  topic: "d/x",
  payload: Buffer.from(String(n)),
  qos,
  retain: false,
  dup: false,
  brokerId: "test",
  brokerCounter: n,
});

/** A persistent and a clean subscriber to `d/#` at QoS 1 on the broker at `url`, and what they receive. */
async function subscribers(url: string): Promise<string[]> {
  const got: string[] = [];
  const persistent = await connect(url, { clientId: "persistent", clean: false });
  const clean = await connect(url, { clientId: "clean", clean: true });
  clients.push(persistent, clean);
  for (const c of [persistent, clean]) {
    await c.subscribeAsync("d/#", { qos: 1 });
    c.on("message", (_t, payload, p) => got.push(`${c.options.clientId}:${payload.toString()}:${p.qos}`));
  }
  return got;
}

/** Turns until freed for QoS 1 to a persistent session (queued first, as Aedes's publish does, then through
 * the persistence's update), QoS 1 to a clean one, and QoS 0; and that the three arrived. */
async function threeDeliveries(aedes: object, got: string[]): Promise<number[]> {
  const persistence = (aedes as { persistence: { outgoingEnqueue(s: object, p: object): Promise<void> } }).persistence;
  await persistence.outgoingEnqueue({ clientId: "persistent" }, message(1, 1));
  const turns = [
    await turnsUntilFreed(aedes, "persistent", message(1, 1)),
    await turnsUntilFreed(aedes, "clean", message(2, 1)),
    await turnsUntilFreed(aedes, "clean", message(3, 0)),
  ];
  await waitFor(() => got.length === 3, "three deliveries");
  expect(got.sort()).toEqual(["clean:2:1", "clean:3:0", "persistent:1:1"]);
  return turns;
}

/** Aedes 1.2 as it comes, on an ephemeral port: the reference for the pacing of deliveries. */
async function bareAedes(): Promise<{ aedes: Aedes; url: string; close(): Promise<void> }> {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    aedes,
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
      await new Promise<void>((r) => aedes.close(() => r()));
      await new Promise((r) => server.close(r));
    },
  };
}

describe("deliveries (deliver.ts)", () => {
  it("MQTT_PROMPT_DELIVERY on: a delivery frees its routing slot in the turn it is written, and the subscriber gets it", async () => {
    const b = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_PROMPT_DELIVERY: "true" });
    brokers.push(b);
    expect(await threeDeliveries(b.broker.aedes, await subscribers(b.url))).toEqual([0, 0, 0]);
  });

  it("off (the default): Aedes's delivery by the same steps frees the routing slot as many turns later as Aedes's own", async () => {
    const bare = await bareAedes();
    let reference: number[];
    try {
      reference = await threeDeliveries(bare.aedes, await subscribers(bare.url));
    } finally {
      await bare.close();
    }
    expect(reference).toEqual([2, 2, 2]);
    const b = await startBroker({ MQTT_ANONYMOUS: "full" });
    brokers.push(b);
    expect(await threeDeliveries(b.broker.aedes, await subscribers(b.url))).toEqual(reference);
  });
});

describe("prompt delivery keeps Aedes's rules", () => {
  it("in order under a backlog, each message once, through a 10-slot router to persistent and clean subscribers", async () => {
    const b = await startBroker({
      MQTT_ANONYMOUS: "full",
      MQTT_CONCURRENCY: "10",
      MQTT_MAX_QUEUED_MESSAGES: "0",
      MQTT_PROMPT_DELIVERY: "true",
    });
    brokers.push(b);
    const got = new Map<string, string[]>();
    for (const [id, clean] of [
      ["p", false],
      ["c", true],
    ] as const) {
      const s = await connect(b.url, { clientId: id, clean });
      clients.push(s);
      got.set(id, []);
      await s.subscribeAsync("load/#", { qos: 1 });
      s.on("message", (topic, payload) => got.get(id)!.push(`${topic}=${payload.toString()}`));
    }
    const pubs = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(b.url, { clientId: `pub-${i}` })));
    clients.push(...pubs);
    await Promise.all(
      pubs.flatMap((p, i) =>
        Array.from({ length: 300 }, (_, k) => p.publishAsync(`load/${i}`, String(k), { qos: (k % 2) as 0 | 1 })),
      ),
    );
    await waitFor(() => [...got.values()].every((g) => g.length >= 3000), "3,000 messages at each subscriber", 20_000);
    await new Promise((r) => setTimeout(r, 200));
    for (const g of got.values()) {
      expect(g).toHaveLength(3000);
      for (let i = 0; i < 10; i++) {
        // per publisher and QoS, in publish order (a QoS 0 message is routed at once, a QoS 1 one after the
        // persistence: MQTT orders messages of one QoS)
        const mine = g.filter((m) => m.startsWith(`load/${i}=`)).map((m) => Number(m.split("=")[1]));
        for (const qos of [0, 1]) {
          expect(mine.filter((k) => k % 2 === qos)).toEqual(Array.from({ length: 150 }, (_, k) => 2 * k + qos));
        }
      }
    }
  });
});
