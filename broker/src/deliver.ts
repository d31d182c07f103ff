import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AedesPacket = require("aedes-packet") as new (original: object, broker: object) => OutPacket;
// the instance Aedes writes with (with the single-buffer writes of common/src/packet-writes.ts when loaded)
const mqttPacket = require("mqtt-packet") as { writeToStream(packet: object, stream: object): boolean };

/**
 * Deliveries that give their routing slot back when the packet is written, not two event-loop turns later
 * (docs/broker.md, "Routing slots freed when written").
 *
 * Aedes routes at most `concurrency` messages at once; a message keeps its slot until every matching
 * subscriber's delivery has called back. Aedes 1.2's deliveries (`lib/client.js` `deliverQoS`/`deliver0`)
 * start in a `setImmediate` ("to clear stacks"), and its `write()` calls back in another `setImmediate`.
 * So every message holds its slot for two turns of the event loop at least, and the router moves at most
 * `concurrency / 2` messages per turn, however much CPU is free. Under load a turn of the broker takes tens
 * of milliseconds or more (10,000 device sockets read per second, GC), and at 1,000 slots and 10,500
 * messages a second a turn must stay under ~48 ms or the routing backlog grows — and with it the GC and
 * the turn. That was the suspect for bench:e2e runs whose backlog never drained (~5,000 msg/s committed,
 * the broker at 90 % of a core, its worst turn per 10 s 0.5–2.4 s); removing the bound did not cure them
 * (below).
 *
 * These are the same functions, step for step — no-local, the duplicate check, `authorizeForward`, the
 * packet copy and its identifier, the downgrade to the subscription's QoS, `outgoingUpdate` for a
 * persistent session, the write, `waitForDrain` on back-pressure, the errors — without the two
 * immediates: a delivery calls back as soon as its packet is written (for a persistent session, after the
 * persistence's update, a microtask with the in-memory backend), so the slot is free in the same turn.
 * Back-pressure is unchanged: a write past the socket's high-water mark still keeps its slot until
 * 'drain'. Order is unchanged: deliveries to a client are written in routing order. Deep synchronous
 * chains (a clean session's delivery completes in the stack that routed it, and the router then routes the
 * next message in that stack) are what the emitter trampoline bounds (overload.ts).
 *
 * Installed per client in `preConnect` when `MQTT_PROMPT_DELIVERY` is on, before its subscriptions are made
 * or restored (Aedes binds a subscription to the client's delivery function when it subscribes). Returns
 * false, and leaves the client alone, when it does not have the two functions (another Aedes version).
 * With the in-memory session queue the QoS 1/2 function is installed in any case, with Aedes's pacing
 * when the option is off (`installDelivery`), for the session queue's check in the turn a delivery is
 * numbered (packet-ids.ts).
 *
 * Off by default, as measured: 4–14 % less broker CPU per QoS 1 message in bench:broker, but in bench:e2e
 * the fleet of 10,000 devices took 46–72 s to reach its pace with it against 29–44 s without (3 runs each)
 * — with nothing pacing the router any more, one turn can route thousands of messages, and connections wait
 * behind them (docs/benchmarks.md, "End to end, ninth session").
 */
interface OutPacket {
  cmd: string;
  topic: string;
  qos: number;
  retain: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  clientId?: string;
  nl?: boolean;
  writeCallback?: (err?: Error | null) => void;
}

type Callback = (err?: Error | null) => void;

interface DeliveryClient {
  id: string;
  clean: boolean;
  connecting: boolean;
  connected: boolean;
  errored: boolean;
  conn: object;
  _nextId: number;
  duplicates: Record<string, number>;
  subscriptions: Record<string, { qos?: number } | undefined>;
  broker: {
    authorizeForward(client: object, packet: OutPacket): OutPacket | null | undefined;
    persistence: {
      outgoingUpdate(client: object, packet: OutPacket): Promise<unknown>;
      outgoingClearMessageId(client: object, packet: OutPacket): Promise<unknown>;
    };
  };
  deliver0(packet: OutPacket, cb: Callback): void;
  deliverQoS(packet: OutPacket, cb: Callback): void;
  waitForDrain(cb: Callback): void;
  emit(event: "error", err: unknown): boolean;
  _onError(err?: Error | null): void;
}

const noop = () => {};

/** Aedes's QoSPacket: a copy of `original` with the packet identifier it was sent with, or the client's
 * next one. */
export function qosPacket(original: object, client: object, broker: object): OutPacket {
  const c = client as DeliveryClient;
  const packet = new AedesPacket(original, broker);
  const id = (original as OutPacket).messageId;
  if (id) packet.messageId = id;
  else {
    packet.messageId = c._nextId;
    c._nextId = c._nextId >= 65535 ? 1 : c._nextId + 1;
  }
  return packet;
}

/** Aedes's `write()`; with `prompt`, calling back at once instead of on the next turn when the socket took
 * the packet (or refused it). */
function write(client: DeliveryClient, packet: OutPacket, prompt: boolean, done: Callback): void {
  let error: Error | null = null;
  if (client.connecting || client.connected) {
    try {
      if (!mqttPacket.writeToStream(packet, client.conn) && !client.errored) {
        client.waitForDrain(done);
        return;
      }
    } catch {
      error = new Error("packet received not valid");
    }
  } else {
    error = new Error("connection closed");
  }
  if (prompt) done(error);
  else setImmediate(done, error);
}

export interface DeliveryOptions {
  /** free the routing slot when the packet is written (MQTT_PROMPT_DELIVERY), not two turns later */
  prompt?: boolean;
  /**
   * For a persistent session's queued delivery (not a retained one): true when its message is not to be
   * written — decided in the turn it is numbered and written, so nothing can change the answer before the
   * write (packet-ids.ts). Aedes decides nothing there: a message removed from the queue meanwhile makes its
   * `outgoingUpdate` fail ("no such packet") and the connection close.
   */
  skip?(packet: OutPacket): boolean;
  /** A persistent session's retained deliveries are in its queue too, and numbered through it (the
   * identifier gate queues those sent at SUBSCRIBE, packet-ids.ts). Aedes writes them unnumbered. */
  retainedQueued?: boolean;
}

/** MQTT_PROMPT_DELIVERY: `installDelivery` with `prompt`. */
export const installPromptDelivery = (client: object): boolean => installDelivery(client, { prompt: true });

/**
 * Aedes's QoS 1/2 delivery function replaced by the same steps (above). Without `prompt` its pacing is
 * Aedes's own — the packet numbered and written on the next turn, the routing slot given back on the turn
 * after — and what differs is only `skip`, asked in the turn the packet is numbered. With `prompt` the
 * QoS 0 delivery is replaced too, and neither waits a turn.
 */
export function installDelivery(client: object, opts: DeliveryOptions = {}): boolean {
  const c = client as DeliveryClient;
  if (typeof c.deliverQoS !== "function" || typeof c.deliver0 !== "function") return false;
  const broker = c.broker;
  const prompt = opts.prompt === true;
  const skip = opts.skip;
  const retainedQueued = opts.retainedQueued === true;

  // Aedes's getToForwardPacket: no-local (MQTT 5), its duplicate check, then the broker's authorizeForward
  const forwardable = (packet: OutPacket): OutPacket | null | undefined => {
    if (packet.clientId === c.id && packet.nl) return undefined;
    const id = packet.brokerId;
    if (id) {
      const counter = packet.brokerCounter as number;
      if (!((c.duplicates[id] || 0) < counter)) return undefined;
      c.duplicates[id] = counter;
    }
    return broker.authorizeForward(c, packet);
  };

  const writeQoS = (err: unknown, packet: OutPacket) => {
    const done = packet.writeCallback as Callback;
    if (err) {
      c.emit("error", err);
      done(); // not the error: mqemitter would throw it
      return;
    }
    write(c, packet, prompt, (e) => {
      if (e) c.emit("error", e);
      done();
    });
  };

  const sendQoS = (toForward: OutPacket, cb: Callback) => {
    const queued = !c.clean && (retainedQueued || !toForward.retain);
    // (its routing slot back at once: this already is the turn after the delivery came)
    if (queued && skip?.(toForward)) return cb();
    const packet = qosPacket(toForward, c, broker);
    // downgraded to the subscription's QoS
    const sub = c.subscriptions[packet.topic];
    if (sub && (sub.qos || 0) < packet.qos) packet.qos = sub.qos as number;
    packet.writeCallback = cb;
    if (!queued) writeQoS(null, packet);
    else {
      const doWrite = (err: unknown = null) => writeQoS(err, packet);
      broker.persistence.outgoingUpdate(c, packet).then(doWrite, doWrite);
    }
  };

  c.deliverQoS = function deliverQoS(original, cb) {
    if (original.qos === 0) return c.deliver0(original, cb);
    const toForward = forwardable(original);
    if (toForward) {
      if (prompt) sendQoS(toForward, cb);
      else setImmediate(sendQoS, toForward, cb);
    } else {
      // nothing to send: its queue entry, if any, goes (Aedes counts this as an error)
      if (c.clean === false) broker.persistence.outgoingClearMessageId(c, original).then(noop, noop);
      if (prompt) cb();
      else setImmediate(cb);
    }
  };
  if (!prompt) return true;

  c.deliver0 = function promptDeliver0(original, cb) {
    const toForward = forwardable(original);
    if (!toForward) return cb();
    const packet = new AedesPacket(toForward, broker);
    packet.qos = 0;
    write(c, packet, true, (err) => {
      c._onError(err);
      cb();
    });
  };

  return true;
}
