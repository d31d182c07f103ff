import { connect as netConnect, type Socket } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { waitFor } from "@esp-fleet/common/testing";
import { EventEmitter } from "node:events";
import { createIdentifierGate, IDS_RESERVE } from "../src/packet-ids.ts";
import { OutgoingIndex } from "../src/outgoing-index.ts";
import { qosPacket } from "../src/deliver.ts";
import { brokerWithQueue, closedAfterEach, connect } from "./helpers.ts";

const opened = closedAfterEach();
const { clients } = opened;

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

/** A stand-in for a client's socket: `destroy()` emits 'close', as a socket's does. */
function closingConn(): EventEmitter & { destroy(): void } {
  const conn = Object.assign(new EventEmitter(), { destroy: () => void conn.emit("close") });
  return conn;
}

const publishes = (packets: Packet[]) =>
  packets.filter((p): p is mqttPacket.IPublishPacket => p.cmd === "publish");

describe("packet identifiers of a persistent session (packet-ids.ts, outgoing-index.ts)", () => {
  it("the session queue gives a delivery whose identifier another message holds a free one, crossing a held block once", () => {
    const index = new OutgoingIndex({ uniqueIds: true });
    const msg = (n: number) => ({ cmd: "publish", topic: "t", qos: 1, brokerId: "b", brokerCounter: n });
    // 1,000 messages sent on an earlier connection with identifiers 101…1100, unacknowledged
    for (let n = 1; n <= 1000; n++) {
      index.enqueue("s", msg(n));
      index.update("s", { ...msg(n), messageId: 100 + n });
    }
    // the next connection's counter starts at 101: each live delivery gets an identifier nobody holds
    const given: number[] = [];
    for (let n = 1001; n <= 1100; n++) {
      index.enqueue("s", msg(n));
      const packet = { ...msg(n), messageId: 101 + (n - 1001) };
      index.update("s", packet);
      given.push(packet.messageId);
    }
    expect(new Set(given).size).toBe(100);
    for (const id of given) expect(id < 101 || id > 1100).toBe(true);
    expect(index.idsHeld("s")).toBe(1100);
    // a replayed message keeps the identifier it holds
    const again = { ...msg(5), messageId: 105 };
    index.update("s", again);
    expect(again.messageId).toBe(105);
    // which connection a message was last numbered for: a second copy to the same one is not sent
    const connA = {};
    index.update("s", { ...msg(7), messageId: 107 }, connA);
    expect(index.standing("s", msg(7), connA)).toBe("sent");
    expect(index.standing("s", msg(7), {})).toBe("queued");
    expect(index.standing("s", msg(8), connA)).toBe("queued");
    expect(index.standing("s", msg(5000), connA)).toBe("absent");
    // a PUBACK for a given identifier removes the live message, not an old one
    expect(index.clear("s", given[0])?.brokerCounter).toBe(1001);
    expect(index.length("s")).toBe(1099);
    // without the option the index answers as aedes-persistence does: the identifier is kept, and shared
    const plain = new OutgoingIndex();
    plain.enqueue("s", msg(1));
    plain.update("s", { ...msg(1), messageId: 7 });
    plain.enqueue("s", msg(2));
    const collide = { ...msg(2), messageId: 7 };
    plain.update("s", collide);
    expect(collide.messageId).toBe(7);
    expect(plain.clear("s", 7)?.brokerCounter).toBe(1);
  });

  it("with all 65,535 identifiers held the session queue refuses to number another message rather than give one twice", () => {
    const index = new OutgoingIndex({ uniqueIds: true });
    const msg = (n: number) => ({ cmd: "publish", topic: "t", qos: 1, brokerId: "b", brokerCounter: n });
    for (let n = 1; n <= 65535; n++) {
      index.enqueue("s", msg(n));
      index.update("s", { ...msg(n), messageId: n });
    }
    index.enqueue("s", msg(65536));
    expect(() => index.update("s", { ...msg(65536), messageId: 7 })).toThrow(/no free packet identifier/);
    expect(index.idsHeld("s")).toBe(65535);
    // the message stays queued, unnumbered; once a PUBACK frees one it is numbered with that one
    expect(index.standing("s", msg(65536), {})).toBe("queued");
    index.clear("s", 300);
    const next = { ...msg(65536), messageId: 7 };
    index.update("s", next);
    expect(next.messageId).toBe(300);
  });

  it("deliveries wait while the session holds nearly every identifier, and go on, in order, as PUBACKs free them", async () => {
    let held = 65535 - IDS_RESERVE;
    let release: (id: string) => void = () => {};
    const holds: string[] = [];
    const timeouts: string[] = [];
    const gate = createIdentifierGate(
      { count: () => held, onRelease: (f) => (release = f), standing: () => "queued" },
      { onHold: (id) => holds.push(id), holdTimeoutMs: 50, onTimeout: (id) => timeouts.push(id) },
    );
    const delivered: string[] = [];
    const slotsBack: string[] = [];
    const conn = closingConn();
    const client = {
      id: "s",
      clean: false,
      conn,
      deliverQoS(p: { qos: number; topic: string; brokerCounter?: number }, cb: () => void) {
        delivered.push(p.topic);
        cb();
      },
    };
    gate.hold(client);
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
    // (the 50 ms timer, then the close's turn: waited for, not slept on — a loaded CI runner was late)
    await waitFor(() => slotsBack.length === 5, "the held delivery's slot back after the timeout", 5000, 5);
    expect(timeouts).toEqual(["s"]);
    expect(delivered).toEqual(["zero", "a", "b", "c"]);
    expect(slotsBack).toEqual(["zero", "a", "b", "c", "d"]);
    // after the close nothing is held
    send("e");
    expect(delivered).toEqual(["zero", "a", "b", "c", "e"]);
  });

  it("deliveries handed over in one turn count against the limit before Aedes numbers them", async () => {
    const limit = 65535 - IDS_RESERVE;
    let held = limit - 10;
    let release: (id: string) => void = () => {};
    const gate = createIdentifierGate(
      { count: () => held, onRelease: (f) => (release = f), standing: () => "queued" },
      { onHold: () => {}, holdTimeoutMs: 1000, onTimeout: () => {} },
    );
    const numbered: number[] = [];
    const conn = closingConn();
    const client = {
      id: "s",
      clean: false,
      conn,
      // as Aedes: numbered (an identifier taken) on the next turn, called back on the one after
      deliverQoS(p: { qos: number; brokerCounter: number }, cb: () => void) {
        setImmediate(() => {
          held++;
          numbered.push(p.brokerCounter);
          setImmediate(cb);
        });
      },
    };
    gate.hold(client);
    // a router with many slots hands 50 deliveries over in one turn
    for (let i = 0; i < 50; i++) client.deliverQoS({ qos: 1, brokerCounter: i }, () => {});
    await new Promise((r) => setTimeout(r, 20));
    expect(numbered).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(held).toBe(limit);
    held -= 5;
    release("s");
    await new Promise((r) => setTimeout(r, 20));
    expect(numbered).toHaveLength(15);
    expect(held).toBe(limit);
    conn.destroy();
  });

  it("a returning session's new deliveries never take an identifier its unacknowledged messages hold", async () => {
    const b = await brokerWithQueue(opened, ID, N);
    const pub = b.publisher;

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

  // Aedes numbers and writes a delivery a turn after it is handed the message (its setImmediate). Whether
  // the message is still to be written must be decided in that turn, not when the delivery arrives: in
  // between, a returning session's replay can write the same message (under its own identifier), and the
  // subscriber's PUBACK for that copy can remove it from the queue.
  for (const acked of [false, true])
    it(`a live delivery overtaken by the replay before it is numbered is not written again${acked ? ", nor closes the connection once the copy is acknowledged" : ""}`, async () => {
      const b = await brokerWithQueue(opened, ID, 0);
      const s = await rawSession(b.broker.ports.mqtt);
      const aedes = b.broker.aedes as unknown as {
        clients: Record<string, { deliverQoS(p: object, cb: () => void): void; conn: Socket }>;
        persistence: {
          outgoingUpdate(c: object, p: object): Promise<unknown>;
          outgoingClearMessageId(c: object, p: object): Promise<unknown>;
        };
      };
      const client = aedes.clients[ID]!;
      const deliver = client.deliverQoS;
      const copies: number[] = [];
      client.deliverQoS = function (packet, cb) {
        deliver.call(this, packet, cb);
        // in the same turn, before the delivery's own turn: the replay's steps for the queued message
        const replayed = qosPacket(packet, client, aedes) as { messageId: number };
        copies.push(replayed.messageId);
        void aedes.persistence.outgoingUpdate(client, replayed).then(async () => {
          client.conn.write(mqttPacket.generate(replayed as unknown as Packet));
          // and the subscriber's PUBACK for that copy, read before the delivery's turn
          if (acked) await aedes.persistence.outgoingClearMessageId(client, replayed);
        });
      };
      // Aedes binds a subscription to the delivery function when it subscribes: subscribe again (at another
      // QoS, or Aedes keeps the subscription it has; the message is published at QoS 1)
      s.socket.write(mqttPacket.generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "q/#", qos: 2 }] }));
      await waitFor(() => s.packets.some((p) => p.cmd === "suback"), "SUBACK");
      await b.publisher.publishAsync("q/live", "live", { qos: 1 });
      await new Promise((r) => setTimeout(r, 200));
      const got = publishes(s.packets).filter((p) => p.topic === "q/live");
      // one copy, under the identifier the queue holds it by
      expect(got.map((p) => p.messageId)).toEqual(copies);
      expect(s.socket.destroyed).toBe(false);
      expect(b.broker.aedes.connectedClients).toBe(2);
      s.socket.destroy();
    });

  it("a retained message sent at SUBSCRIBE to a persistent session takes no identifier its queued messages hold, and is queued like any other", async () => {
    const b = await brokerWithQueue(opened, ID, N);
    const first = await rawSession(b.broker.ports.mqtt);
    await waitFor(() => publishes(first.packets).length === N, `${N} queued messages`);
    const held = publishes(first.packets).map((p) => p.messageId as number);
    await b.publisher.publishAsync("r/x", "retained", { qos: 1, retain: true });
    // the connection's counter at the identifier the first unacknowledged message holds, as it can be
    const client = (b.broker.aedes as unknown as { clients: Record<string, { _nextId: number }> }).clients[ID]!;
    client._nextId = held[0]!;
    first.socket.write(mqttPacket.generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "r/#", qos: 1 }] }));
    await waitFor(() => publishes(first.packets).some((p) => p.topic === "r/x"), "the retained message");
    const retained = publishes(first.packets).find((p) => p.topic === "r/x")!;
    expect(retained.retain).toBe(true);
    expect(held).not.toContain(retained.messageId);
    // acknowledged, and the connection drops: the 50 come again, the retained message does not
    first.socket.write(mqttPacket.generate({ cmd: "puback", messageId: retained.messageId as number }));
    await new Promise((r) => setTimeout(r, 100));
    first.socket.destroy();
    await waitFor(() => b.broker.aedes.connectedClients === 1, "the first connection gone");
    const second = await rawSession(b.broker.ports.mqtt);
    await waitFor(() => publishes(second.packets).length >= N, `${N} unacknowledged messages again`);
    await new Promise((r) => setTimeout(r, 200));
    expect(publishes(second.packets).map((p) => p.topic).sort()).toEqual(Array.from({ length: N }, (_, i) => `q/${i}`).sort());
    // not acknowledged: it comes again at the next return, as a queued QoS 1 message does (MQTT 3.1.1 §4.4)
    second.socket.write(mqttPacket.generate({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic: "r/#", qos: 2 }] }));
    await waitFor(() => publishes(second.packets).some((p) => p.topic === "r/x"), "the retained message, again");
    second.socket.destroy();
    await waitFor(() => b.broker.aedes.connectedClients === 1, "the second connection gone");
    const third = await rawSession(b.broker.ports.mqtt);
    await waitFor(() => publishes(third.packets).some((p) => p.topic === "r/x"), "the unacknowledged retained message at the return");
    third.socket.destroy();
  });

  it("the replay of a queue longer than 65,535 gives no identifier twice: it waits for PUBACKs to free one", async () => {
    const b = await brokerWithQueue(opened, ID, 0);
    const aedes = b.broker.aedes as unknown as {
      id: string;
      persistence: { outgoingEnqueue(s: object, p: object): Promise<unknown> };
    };
    const total = 65535 + 100;
    for (let i = 0; i < total; i++)
      await aedes.persistence.outgoingEnqueue(
        { clientId: ID },
        { cmd: "publish", topic: `q/${i}`, payload: Buffer.from("x"), qos: 1, retain: false, dup: false, brokerId: aedes.id, brokerCounter: 1e9 + i },
      );
    const s = await rawSession(b.broker.ports.mqtt);
    await waitFor(() => publishes(s.packets).length >= 65535, "65,535 replayed", 30_000);
    await new Promise((r) => setTimeout(r, 300));
    const first = publishes(s.packets);
    // every identifier once; the rest wait
    expect(first).toHaveLength(65535);
    expect(new Set(first.map((p) => p.messageId)).size).toBe(65535);
    // PUBACKs for the first 100 free 100 identifiers: the last 100 go out, under those
    for (const p of first.slice(0, 100)) s.socket.write(mqttPacket.generate({ cmd: "puback", messageId: p.messageId as number }));
    await waitFor(() => publishes(s.packets).length === total, "the rest of the queue", 10_000);
    const rest = publishes(s.packets).slice(65535);
    expect(rest.map((p) => p.topic)).toEqual(Array.from({ length: 100 }, (_, i) => `q/${65535 + i}`));
    expect(new Set(rest.map((p) => p.messageId))).toEqual(new Set(first.slice(0, 100).map((p) => p.messageId)));
    s.socket.destroy();
  }, 60_000);
});
