import { describe, expect, it } from "vitest";
import { waitFor } from "@esp-fleet/common/testing";
import { closedAfterEach, connect, startBroker, type TestBrokerHandle } from "./helpers.ts";

const { clients, brokers } = closedAfterEach();

interface AedesClient {
  deliverQoS(packet: object, cb: () => void): void;
}

/** Deliver one message to a connected subscriber through Aedes's client object, as the router does; true
 * when its callback (which frees the routing slot) came before the next event-loop turn. */
function freedInTheSameTurn(b: TestBrokerHandle, clientId: string, packet: object): Promise<boolean> {
  const client = (b.broker.aedes as unknown as { clients: Record<string, AedesClient> }).clients[clientId]!;
  let turned = false;
  setImmediate(() => (turned = true));
  return new Promise((resolve) => client.deliverQoS(packet, () => resolve(!turned)));
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

describe.each([
  ["on", { MQTT_PROMPT_DELIVERY: "true" }, true],
  ["off (default: Aedes's own)", {}, false],
])("MQTT_PROMPT_DELIVERY %s (deliver.ts)", (_name, env, prompt) => {
  it(`a delivery frees its routing slot ${prompt ? "in the turn it is written" : "turns later"}, and the subscriber gets it`, async () => {
    const b = await startBroker({ MQTT_ANONYMOUS: "full", ...env });
    brokers.push(b);
    const got: string[] = [];
    const persistent = await connect(b.url, { clientId: "persistent", clean: false });
    const clean = await connect(b.url, { clientId: "clean", clean: true });
    clients.push(persistent, clean);
    for (const c of [persistent, clean]) {
      await c.subscribeAsync("d/#", { qos: 1 });
      c.on("message", (_t, payload, p) => got.push(`${c.options.clientId}:${payload.toString()}:${p.qos}`));
    }
    // QoS 1 to a persistent session (queued first, as Aedes's publish does, then through the persistence's
    // update), to a clean one, and QoS 0
    const persistence = (b.broker.aedes as unknown as { persistence: { outgoingEnqueue(s: object, p: object): Promise<void> } })
      .persistence;
    await persistence.outgoingEnqueue({ clientId: "persistent" }, message(1, 1));
    expect(await freedInTheSameTurn(b, "persistent", message(1, 1))).toBe(prompt);
    expect(await freedInTheSameTurn(b, "clean", message(2, 1))).toBe(prompt);
    expect(await freedInTheSameTurn(b, "clean", message(3, 0))).toBe(prompt);
    await waitFor(() => got.length === 3, "three deliveries");
    expect(got.sort()).toEqual(["clean:2:1", "clean:3:0", "persistent:1:1"]);
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
