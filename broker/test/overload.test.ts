import { connect as netConnect, type Socket } from "node:net";
import { createRequire } from "node:module";
import { afterAll, describe, expect, it } from "vitest";
import type { MqttClient } from "mqtt";
import mqttPacket from "mqtt-packet";
import { waitFor } from "@esp-fleet/common/testing";
import { installEmitterTrampoline, type EmitterLike } from "../src/overload.ts";
import { closeClient, connect, startBroker, type TestBrokerHandle } from "./helpers.ts";

const require = createRequire(import.meta.url);
const MQEmitter = require("mqemitter") as (opts: { concurrency: number }) => EmitterLike & {
  on(topic: string, fn: (msg: unknown, cb: () => void) => void): void;
  emit(msg: { topic: string }, cb: () => void): void;
  length: number;
};

/** Fill an emitter's 100 slots with messages whose subscriber is stuck, queue 20,000 unsubscribed ones, release. */
function backlogThenRelease(mq: ReturnType<typeof MQEmitter>): { completed: () => number; release: () => void } {
  const stuck: (() => void)[] = [];
  mq.on("slow/#", (_m, cb) => stuck.push(cb));
  for (let i = 0; i < 100; i++) mq.emit({ topic: "slow/x" }, () => {});
  let completed = 0;
  for (let i = 0; i < 20_000; i++) mq.emit({ topic: `nobody/${i}` }, () => completed++);
  return { completed: () => completed, release: () => stuck.splice(0).forEach((cb) => cb()) };
}

describe("overload: the routing emitter's synchronous recursion", () => {
  it("plain mqemitter (as inside Aedes 1.2) overflows the stack when a backlog of unsubscribed messages drains", () => {
    const mq = MQEmitter({ concurrency: 100 });
    const { release } = backlogThenRelease(mq);
    expect(mq.length).toBe(20_000);
    expect(release).toThrow(RangeError); // Maximum call stack size exceeded
  });

  it("with the trampoline the same backlog drains completely, in order, across event-loop turns", async () => {
    const mq = MQEmitter({ concurrency: 100 });
    let deferred = 0;
    installEmitterTrampoline(mq, { onDefer: () => deferred++ });
    const { release, completed } = backlogThenRelease(mq);
    release();
    await waitFor(() => completed() === 20_000, "every queued message routed", 10_000, 5);
    expect(mq.length).toBe(0);
    expect(mq.current).toBe(0);
    expect(deferred).toBeGreaterThan(0);
  });
});

describe("overload: routing order with the trampoline", () => {
  it("routes in emit order: a message emitted while older ones wait for the next turn goes after them, not ahead", async () => {
    const mq = MQEmitter({ concurrency: 100 });
    let deferred = 0;
    installEmitterTrampoline(mq, { maxDepth: 3, onDefer: () => deferred++ });
    const routed: number[] = [];
    // each routing of chain/n emits chain/n+1 from inside it: the stack deepens until the trampoline defers
    mq.on("chain/+", (m, cb) => {
      const n = (m as { n: number }).n;
      routed.push(n);
      if (n < 6) mq.emit({ topic: "chain/x", n: n + 1 } as { topic: string }, () => {});
      cb();
    });
    mq.emit({ topic: "chain/x", n: 0 } as { topic: string }, () => {});
    expect(deferred).toBeGreaterThan(0);
    // from a fresh stack, before the deferred ones have been routed
    mq.emit({ topic: "chain/x", n: 100 } as { topic: string }, () => {});
    await waitFor(() => routed.length === 8, "every message routed", 2000, 5);
    // emit order: 4 is emitted while 3 is routed, on the next turn, after 100
    expect(routed).toEqual([0, 1, 2, 3, 100, 4, 5, 6]);
    expect(mq.current).toBe(0);
  });
});

describe("overload: 2,000 clients offering 20,000 QoS 1 messages while a frozen subscriber holds the slots", () => {
  let b: TestBrokerHandle;
  let frozen: Socket | undefined;
  const clients: MqttClient[] = [];
  afterAll(async () => {
    frozen?.destroy();
    await Promise.all(clients.map(closeClient));
    await b?.close();
  });

  it("survives, acknowledges every message, and serves a fresh client afterwards", { timeout: 60_000 }, async () => {
    // 100 slots (Aedes's own default): 400 large messages to the frozen subscriber are enough to hold them all
    b = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_CONCURRENCY: "100", MQTT_DRAIN_TIMEOUT_MS: "3000", MQTT_CONNECT_TIMEOUT_MS: "30000" });
    const port = b.broker.ports.mqtt;
    // 1. 2,000 clients (they will offer 10 QoS 1 messages each, to topics nobody subscribes to)
    for (let i = 0; i < 2000; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: 100 }, (_, k) => connect(b.url, { clientId: `load-${i + k}`, keepalive: 0 })),
      );
      clients.push(...batch);
    }
    // 2. a subscriber that never reads its socket
    frozen = netConnect(port, "127.0.0.1");
    await new Promise((r) => frozen!.once("connect", r));
    frozen.write(
      mqttPacket.generate({
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion: 4,
        clientId: "frozen",
        clean: true,
        keepalive: 0,
      }),
    );
    frozen.write(mqttPacket.generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "slow/#", qos: 0 }] }));
    await waitFor(() => (b.broker.aedes as unknown as { clients: Record<string, unknown> }).clients.frozen, "frozen subscriber");
    await new Promise((r) => setTimeout(r, 100));
    frozen.pause();
    // 3. enough large messages to fill its socket: every routing slot then waits for a drain that never comes
    const feeder = await connect(b.url, { clientId: "feeder" });
    clients.push(feeder);
    const big = Buffer.alloc(120_000, 7);
    for (let i = 0; i < 400; i++) feeder.publish("slow/x", big, { qos: 0 });
    const mq = (b.broker.aedes as unknown as { mq: { current: number; length: number } }).mq;
    await waitFor(() => mq.current >= 100, "routing slots held by the frozen subscriber", 20_000);
    const payload = Buffer.alloc(200, 1);
    const acks = clients
      .filter((c) => c.options.clientId?.startsWith("load-"))
      .flatMap((c) =>
        Array.from({ length: 10 }, (_, k) =>
          c.publishAsync(`s1/fridge/${c.options.clientId}/telemetry`, payload, { qos: 1 }).then(() => k),
        ),
      );
    expect(acks).toHaveLength(20_000);
    await waitFor(() => mq.length > 1000, "a backlog in the emitter", 20_000);

    // 4. drainTimeout drops the frozen subscriber; the backlog drains without overflowing the stack
    const settled = await Promise.allSettled(acks);
    await waitFor(() => mq.length === 0 && mq.current === 0, "the backlog routed", 30_000);
    expect(settled.filter((s) => s.status === "rejected")).toHaveLength(0);
    expect(await b.broker.http.metrics.getSingleMetricAsString("broker_emitter_deferred_total")).not.toMatch(/ 0$/m);
    expect(await b.broker.http.metrics.getSingleMetricAsString("broker_client_errors_total")).toMatch(/kind="drain_timeout"/);
    // 5. and recovers: a fresh subscriber/publisher pair round-trips
    const sub = await connect(b.url, { clientId: "after" });
    clients.push(sub);
    const got = new Promise<string>((resolve) => sub.on("message", (_t, p) => resolve(p.toString())));
    await sub.subscribeAsync("check/#", { qos: 1 });
    await feeder.publishAsync("check/1", "alive", { qos: 1 });
    expect(await got).toBe("alive");
  });
});
