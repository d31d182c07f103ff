import { connect as netConnect, type Socket } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { waitFor } from "@esp-fleet/common/testing";
import { EventEmitter } from "node:events";
import { createIdentifierGate, IDS_RESERVE, skipIdentifiersInUse } from "../src/packet-ids.ts";
import { qosPacket } from "../src/deliver.ts";
import { closedAfterEach, connect, startBroker } from "./helpers.ts";

const { clients, brokers } = closedAfterEach();

const N = 50;
const ID = "ids-sub";

/** A persistent session ID over a raw socket: every packet it receives, and its socket to write with. */
function rawSession(port: number): Promise<{ socket: Socket; packets: Packet[] }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, "127.0.0.1");
    const parser = mqttPacket.parser();
    const packets: Packet[] = [];
    parser.on("packet", (p) => {
      packets.push(p);
      if (p.cmd === "connack") resolve({ socket, packets });
    });
    socket.on("data", (d) => parser.parse(d));
    socket.on("error", reject);
    socket.write(mqttPacket.generate({ cmd: "connect", clientId: ID, clean: false, keepalive: 30, protocolVersion: 4 }));
  });
}

const publishes = (packets: Packet[]) =>
  packets.filter((p): p is mqttPacket.IPublishPacket => p.cmd === "publish");

describe("packet identifiers of a persistent session (packet-ids.ts)", () => {
  it("the counter moves past identifiers in use, wraps at 65,535, and gives one when all are taken", () => {
    const used = new Set([7, 8, 10, 65535, 1]);
    const client = { id: "s", _nextId: 7 };
    const inUse = (ids: Set<number>) => ({ holds: (_: string, m: number) => ids.has(m), count: () => ids.size });
    expect(skipIdentifiersInUse(client, inUse(used))).toBe(true);
    // the packet copy Aedes makes for a delivery reads and advances the counter as QoSPacket does
    const next = () => qosPacket({ cmd: "publish", topic: "t", qos: 1, retain: false }, client, {}).messageId;
    expect([next(), next(), next()]).toEqual([9, 11, 12]);
    client._nextId = 65534;
    expect([next(), next()]).toEqual([65534, 2]);
    // a message that has its identifier (a replayed one) keeps it
    expect(qosPacket({ cmd: "publish", topic: "t", qos: 1, messageId: 7 }, client, {}).messageId).toBe(7);
    // all 65,535 in use: the next one anyway, without looking at any
    const full = { id: "f", _nextId: 100 };
    let lookups = 0;
    skipIdentifiersInUse(full, { holds: () => (lookups++, true), count: () => 65535 });
    expect(full._nextId).toBe(100);
    expect(lookups).toBe(0);
    // one left free: found
    const nearlyFull = { id: "n", _nextId: 100 };
    skipIdentifiersInUse(nearlyFull, { holds: (_, m) => m !== 99, count: () => 65534 });
    expect(nearlyFull._nextId).toBe(99);
    expect(skipIdentifiersInUse({ id: "x" }, inUse(new Set()))).toBe(false);
  });

  it("deliveries wait while the session holds nearly every identifier, and go on, in order, as PUBACKs free them", async () => {
    let held = 65535 - IDS_RESERVE;
    let release: (id: string) => void = () => {};
    const holds: string[] = [];
    const timeouts: string[] = [];
    const gate = createIdentifierGate(
      { holds: () => false, count: () => held, onRelease: (f) => (release = f) },
      { onHold: (id) => holds.push(id), holdTimeoutMs: 50, onTimeout: (id) => timeouts.push(id) },
    );
    const delivered: string[] = [];
    const slotsBack: string[] = [];
    const conn = Object.assign(new EventEmitter(), { destroy: () => conn.emit("close") });
    const client = {
      id: "s",
      clean: false,
      conn,
      deliverQoS(p: { qos: number; topic: string }, cb: () => void) {
        delivered.push(p.topic);
        cb();
      },
    };
    expect(gate.install(client)).toBe(true);
    const send = (topic: string, qos = 1) => client.deliverQoS({ qos, topic }, () => slotsBack.push(topic));
    send("a");
    send("b");
    send("zero", 0); // QoS 0 takes no identifier: never held
    expect(delivered).toEqual(["zero"]);
    expect(holds).toEqual(["s", "s"]);
    held--;
    release("s");
    expect(delivered).toEqual(["zero", "a", "b"]);
    // the gate is open again
    send("c");
    expect(delivered).toEqual(["zero", "a", "b", "c"]);
    // held again, and no PUBACK frees an identifier in time: the connection is closed, and the waiting give
    // their slots back unwritten (the queue keeps them for the next connection)
    held = 65535;
    send("d");
    await new Promise((r) => setTimeout(r, 80));
    expect(timeouts).toEqual(["s"]);
    expect(delivered).toEqual(["zero", "a", "b", "c"]);
    expect(slotsBack).toEqual(["zero", "a", "b", "c", "d"]);
    // after the close nothing is held
    send("e");
    expect(delivered).toEqual(["zero", "a", "b", "c", "e"]);
  });

  it("a returning session's new deliveries never take an identifier its unacknowledged messages hold", async () => {
    const b = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_MAX_QUEUED_MESSAGES: "0" });
    brokers.push(b);
    const sub = await connect(b.url, { clientId: ID, clean: false });
    await sub.subscribeAsync("q/#", { qos: 1 });
    await sub.endAsync();
    const pub = await connect(b.url, { clientId: "ids-pub" });
    clients.push(pub);
    await Promise.all(Array.from({ length: N }, (_, i) => pub.publishAsync(`q/${i}`, String(i), { qos: 1 })));

    // First return: the N queued messages go out with identifiers; none is acknowledged, and the
    // connection drops (a subscriber that crashed before its commit).
    const first = await rawSession(b.broker.ports.mqtt);
    await waitFor(() => publishes(first.packets).length === N, `${N} queued messages`);
    const held = publishes(first.packets).map((p) => p.messageId as number);
    expect(new Set(held).size).toBe(N);
    first.socket.destroy();
    await waitFor(() => b.broker.aedes.connectedClients === 1, "the first connection gone");

    // Second return. Aedes starts a connection's identifiers at a random number; here it starts at the
    // identifier the first queued message holds, as it does by chance (and with tens of thousands
    // unacknowledged, almost always).
    b.broker.aedes.once("client", (client) => {
      if (client.id === ID) (client as unknown as { _nextId: number })._nextId = held[0]!;
    });
    const second = await rawSession(b.broker.ports.mqtt);
    await waitFor(() => publishes(second.packets).length === N, "the queue replayed");
    await pub.publishAsync("q/live", "live", { qos: 1 });
    await waitFor(() => publishes(second.packets).some((p) => p.topic === "q/live"), "the live message");
    const live = publishes(second.packets).find((p) => p.topic === "q/live")!;
    // MQTT 3.1.1 §2.3.1: an identifier in use is not reused for a new message
    expect(held).not.toContain(live.messageId);

    // The subscriber commits the live message only, acknowledges it, and drops again.
    second.socket.write(mqttPacket.generate({ cmd: "puback", messageId: live.messageId as number }));
    await new Promise((r) => setTimeout(r, 100));
    second.socket.destroy();
    await waitFor(() => b.broker.aedes.connectedClients === 1, "the second connection gone");

    // Third return: every message never acknowledged comes again — all N, and not the live one.
    const got = new Set<string>();
    const third = await connect(b.url, { clientId: ID, clean: false });
    clients.push(third);
    third.on("message", (topic) => got.add(topic));
    await waitFor(() => got.size >= N, `${N} unacknowledged messages again`);
    await new Promise((r) => setTimeout(r, 200));
    expect([...got].sort()).toEqual(Array.from({ length: N }, (_, i) => `q/${i}`).sort());
  });
});
