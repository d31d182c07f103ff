import { connect as netConnect, type Socket } from "node:net";
import mqttPacket from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { closedAfterEach, connect, startBroker } from "./helpers.ts";

const { clients, brokers } = closedAfterEach();

const ID = "churn-sub";
// 2 KB messages: a stalled subscriber's socket buffers fill within a few hundred of them
const PAD = "x".repeat(2048);

/**
 * Persistent session ID over a raw socket, acknowledging as ingest does: a batch at a time, `ackEveryMs`
 * after receipt, on the connection the messages came on. Adds every payload received to `got`. Resolves
 * when the socket closes (by `lifeMs`, or by the broker).
 */
function session(port: number, got: Set<string>, lifeMs: number, ackEveryMs: number, stallAtMs = Infinity): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = netConnect(port, "127.0.0.1");
    const parser = mqttPacket.parser();
    let toAck: number[] = [];
    const acker = setInterval(() => {
      const ids = toAck;
      toAck = [];
      if (socket.writable) for (const messageId of ids) socket.write(mqttPacket.generate({ cmd: "puback", messageId }));
    }, ackEveryMs);
    parser.on("packet", (p) => {
      if (p.cmd !== "publish") return;
      got.add(String(p.payload).split("|")[0]!);
      if (p.qos > 0) toAck.push(p.messageId as number);
    });
    socket.on("data", (d) => parser.parse(d));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(acker);
      clearTimeout(life);
      resolve();
    });
    const life = setTimeout(() => socket.destroy(), lifeMs);
    // stops reading (a subscriber stalled in a long commit): the broker's writes back up until its drain timeout
    if (stallAtMs < lifeMs) setTimeout(() => socket.pause(), stallAtMs).unref();
    socket.write(mqttPacket.generate({ cmd: "connect", clientId: ID, clean: false, keepalive: 30, protocolVersion: 4 }));
  });
}

// Found with bench:e2e: a session dropped and back under load lost messages when its new deliveries took
// identifiers its unacknowledged ones held (packet-ids.ts). Without that fix this failed about 1 run in 3
// when it was written; since the broker's later delivery changes it fails about 1 in 17 without it (counted
// in the thirteenth session), so packet-ids.test.ts is what pins that fix. This stays as the end-to-end
// property: whatever the churn, nothing is lost.
describe("a persistent session that keeps dropping while messages flow to it", () => {
  it("gets every message in the end", { timeout: 60_000 }, async () => {
    const b = await startBroker({
      MQTT_ANONYMOUS: "full",
      MQTT_MAX_QUEUED_MESSAGES: "0",
      MQTT_MAX_QUEUED_MESSAGES_SERVICE: "0",
      MQTT_CONCURRENCY: "65536",
      MQTT_WRITE_HIGH_WATER_KB: "16",
      MQTT_DRAIN_TIMEOUT_MS: "150",
    });
    brokers.push(b);
    const port = b.broker.ports.mqtt;
    let drainTimeouts = 0;
    b.broker.aedes.on("clientError", (_c, err) => {
      if (err.message === "drain timeout") drainTimeouts++;
    });
    const got = new Set<string>();
    // subscribe once
    const s = await connect(b.url, { clientId: ID, clean: false });
    await s.subscribeAsync("c/#", { qos: 1 });
    await s.endAsync();

    const PUBLISHERS = 8;
    const EACH = 3000;
    let publishing = true;
    let lives = 0;
    const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) => connect(b.url, { clientId: `churn-pub-${i}` })));
    clients.push(...pubs);
    // at full speed (the bug needs the load), and on past EACH until the session has had six lives: a fast
    // machine once sent all 3000 within three
    const sentBy = new Array<number>(PUBLISHERS).fill(0);
    const sent = Promise.all(
      pubs.map(async (pub, i) => {
        for (let k = 0; k < EACH || (lives < 6 && k < 10 * EACH); k += 100) {
          await Promise.all(Array.from({ length: 100 }, (_, j) => pub.publishAsync(`c/${i}`, `${i}:${k + j}|${PAD}`, { qos: 1 })));
          sentBy[i] = k + 100;
        }
      }),
    ).finally(() => (publishing = false));
    while (publishing) {
      // every third life stops reading after 50 ms and stays a second: the broker drops it for not draining
      if (lives % 3 === 0) await session(port, got, 1000, 30, 50);
      else await session(port, got, 50 + Math.random() * 600, 30, Math.random() < 0.5 ? 40 + Math.random() * 100 : Infinity);
      lives++;
    }
    await sent;
    // a last connection that stays until nothing more comes
    for (let quiet = 0, before = -1; quiet < 3; ) {
      await session(port, got, 700, 20);
      if (got.size === before) quiet++;
      else quiet = 0;
      before = got.size;
    }
    const missing: string[] = [];
    for (let i = 0; i < PUBLISHERS; i++) for (let k = 0; k < sentBy[i]!; k++) if (!got.has(`${i}:${k}`)) missing.push(`${i}:${k}`);
    // the session did come and go while messages flowed, and the broker did drop it for not draining
    expect(lives).toBeGreaterThanOrEqual(6);
    expect(drainTimeouts).toBeGreaterThan(0);
    expect({ missing: missing.length, first: missing.slice(0, 5) }).toEqual({ missing: 0, first: [] });
  });
});
