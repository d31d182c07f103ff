import { connect as netConnect } from "node:net";
import mqttPacket from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { waitFor } from "@esp-fleet/common/testing";
import { brokerWithQueue, closedAfterEach, connect, type TestBrokerHandle } from "./helpers.ts";

const opened = closedAfterEach();
const { clients } = opened;

const N = 5_000;
const ID = "replay-sub";

/** A broker with N QoS 1 messages (`q/0` … `q/N-1`, in that order) queued for the persistent session ID. */
const queued = () => brokerWithQueue(opened, ID, N);

const replayedTotal = async (b: TestBrokerHandle) => (await b.broker.metrics.replayed.get()).values[0]?.value ?? 0;

/** Session ID over a raw socket that acknowledges nothing: reads `until` publishes, then cuts the
 * connection. Returns the topics in arrival order and the most publishes one socket read carried. */
function rawSession(port: number, until: number): Promise<{ topics: string[]; perReadMax: number }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, "127.0.0.1");
    const parser = mqttPacket.parser();
    const topics: string[] = [];
    let perRead = 0;
    let perReadMax = 0;
    parser.on("packet", (p) => {
      if (p.cmd !== "publish" || topics.length >= until) return;
      perRead++;
      topics.push(p.topic);
      if (topics.length === until) {
        socket.destroy();
        resolve({ topics, perReadMax: Math.max(perReadMax, perRead) });
      }
    });
    socket.on("data", (d) => {
      perRead = 0;
      parser.parse(d);
      perReadMax = Math.max(perReadMax, perRead);
    });
    socket.on("error", reject);
    socket.write(mqttPacket.generate({ cmd: "connect", clientId: ID, clean: false, keepalive: 30, protocolVersion: 4 }));
  });
}

describe("a persistent session's queue replayed at its reconnect (replay.ts)", () => {
  it("leaves in batches, whole and in order; unacknowledged, it comes again; acknowledged, it is gone", async () => {
    const b = await queued();
    const raw = await rawSession(b.broker.ports.mqtt, N);
    expect(raw.topics).toEqual(Array.from({ length: N }, (_, i) => `q/${i}`));
    // Aedes's own replay writes one message per event-loop turn, so a read carries one or two; here up to
    // 256 leave per turn
    expect(raw.perReadMax).toBeGreaterThanOrEqual(100);
    await waitFor(async () => (await replayedTotal(b)) === N, "the replay counted");
    await waitFor(() => b.broker.aedes.connectedClients === 1, "the raw session gone");

    // nothing was acknowledged: all of it again, to a client that acknowledges
    const got: string[] = [];
    const back = await connect(b.url, { clientId: ID, clean: false });
    clients.push(back);
    back.on("message", (topic) => got.push(topic));
    await waitFor(() => got.length >= N, `${N} queued messages again`, 20_000);
    expect(got).toEqual(Array.from({ length: N }, (_, i) => `q/${i}`));

    // every message was acknowledged, so the next return finds an empty queue
    await new Promise((r) => setTimeout(r, 200));
    await back.endAsync();
    const again: string[] = [];
    const third = await connect(b.url, { clientId: ID, clean: false });
    clients.push(third);
    third.on("message", (topic) => again.push(topic));
    await new Promise((r) => setTimeout(r, 300));
    expect(again).toEqual([]);
  });

  it("a session that drops mid-replay gets every message at its next return", async () => {
    const b = await queued();
    expect((await rawSession(b.broker.ports.mqtt, 100)).topics).toHaveLength(100);
    await waitFor(() => b.broker.aedes.connectedClients === 1, "the raw session gone");

    const got = new Set<string>();
    const back = await connect(b.url, { clientId: ID, clean: false });
    clients.push(back);
    back.on("message", (topic) => got.add(topic));
    await waitFor(() => got.size >= N, `${N} distinct messages`, 20_000);
    expect(got.size).toBe(N);
  });
});
