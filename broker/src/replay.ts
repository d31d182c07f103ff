import { createRequire } from "node:module";
import { Readable, type Duplex } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { Aedes, Client } from "aedes";
import { qosPacket } from "./deliver.ts";
import type { IdentifiersInUse } from "./packet-ids.ts";

const require = createRequire(import.meta.url);
// the instance Aedes writes with (with the single-buffer writes of common/src/packet-writes.ts when loaded)
const mqttPacket = require("mqtt-packet") as { writeToStream(packet: object, stream: object): boolean };

/**
 * A persistent session's queue replayed in batches at its reconnect (docs/broker.md, "Durability").
 *
 * Aedes 1.2 replays the queue in its connect handler (`lib/handlers/connect.js` `emptyQueue`): a stream of
 * the queued packets through a transform that handles one packet, writes it, and asks for the next only in
 * the write's callback — which Aedes always calls through `setImmediate`. So the queue leaves at one
 * message per event-loop turn: 14,100 a second on an idle broker, and on a loaded one (turns of 1–5 ms)
 * 200–1,000 a second while live traffic keeps arriving. An ingest service that comes back after a crash to
 * a queue of a few hundred thousand readings then needs minutes to catch up.
 *
 * Here the connect handler is given an empty queue (the persistence's `outgoingStream`, asked while the
 * client is still connecting and has a persistent session), and the queue is replayed once the client is
 * ready, by the same steps per packet: a packet identifier (the one it was sent with before, or the
 * session's next one), `outgoingUpdate`, `authorizeForward` (a refused entry is removed from the queue),
 * the write. Only the pacing differs: packets go out back to back, up to `batch` per turn, and the replay
 * waits for `'drain'` when the socket reports back-pressure (Aedes's `waitForDrain`, with its drain
 * timeout). Order is the queue's. A client that goes away mid-replay keeps the rest in its queue for its
 * next connect, as before. Live deliveries to the session go on meanwhile, as before.
 *
 * Clean sessions, and every other caller of `outgoingStream` (Aedes's clean-up of a clean session's queue),
 * get the persistence's own stream.
 */
interface ReplayPacket {
  cmd: string;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
}

interface ReplayClient {
  id: string;
  clean: boolean;
  connecting: boolean;
  connected: boolean;
  closed: boolean;
  errored?: boolean;
  conn: Duplex;
  emit(event: "error", err: unknown): boolean;
  waitForDrain(callback: (err?: Error) => void): void;
}

interface ReplayPersistence {
  outgoingStream(client: object): Readable;
  outgoingUpdate(client: object, packet: object): Promise<unknown>;
  outgoingClearMessageId(client: object, packet: object): Promise<unknown>;
}

export interface ReplayOptions {
  /** queue entries handled per event-loop turn at most (default 256) */
  batch?: number;
  /** called when a replay ends, with the number of packets written and how long it took */
  onReplayed?: (clientId: string, written: number, ms: number) => void;
  /** where a queued message stands for this connection (OutgoingIndex.standing): one already written to it
   * live, since the replay began ("sent"), is not written again */
  standing?: IdentifiersInUse["standing"];
  /** before a queued message that has no packet identifier is given one: `undefined` when one is free,
   * else a wait for one (an error: the connection closed) — the identifier gate's `room` (packet-ids.ts) */
  room?: (client: object) => Promise<Error | undefined> | undefined;
}

/** `store`: the persistence given to Aedes (it takes it over in `listen()`, so this may run before). */
export function installBatchedReplay(aedes: Aedes, store: object, opts: ReplayOptions = {}): void {
  const batch = Math.max(1, opts.batch ?? 256);
  const persistence = store as ReplayPersistence;
  const queueOf = persistence.outgoingStream.bind(persistence);
  const pending = new WeakSet<object>();

  persistence.outgoingStream = (client: object) => {
    const c = client as Partial<ReplayClient>;
    if (c.connecting === true && c.clean === false && c.conn) {
      pending.add(client);
      return Readable.from([]);
    }
    return queueOf(client);
  };

  aedes.on("clientReady", (client: Client) => {
    if (!pending.delete(client)) return;
    const t0 = performance.now();
    replay(client as unknown as ReplayClient).then(
      (written) => opts.onReplayed?.(client.id, written, performance.now() - t0),
      (err: unknown) => (client as unknown as ReplayClient).emit("error", err),
    );
  });

  /** Aedes's wait for 'drain' (with its drain timeout); an error when it timed out or the connection closed. */
  const drained = (client: ReplayClient) =>
    new Promise<Error | undefined>((resolve) => {
      const conn = client.conn;
      const onClose = () => resolve(new Error("connection closed"));
      conn.once("close", onClose);
      client.waitForDrain((err) => {
        conn.off("close", onClose);
        resolve(err);
      });
    });
  const live = (c: ReplayClient) => c.connected && !c.closed && !c.errored;

  async function replay(client: ReplayClient): Promise<number> {
    let written = 0;
    let thisTurn = 0;
    for await (const queued of queueOf(client) as AsyncIterable<ReplayPacket>) {
      if (!live(client)) break; // the rest stays queued for the next connect
      // every entry counts toward the turn's batch, refused ones too (each costs a persistence call)
      if (++thisTurn > batch) {
        thisTurn = 1;
        await nextTurn();
        if (!live(client)) break;
      }
      // a new identifier only while one is free: with all 65,535 held, the queue would give one twice
      if (!queued.messageId) {
        const wait = opts.room?.(client);
        if (wait && ((await wait) || !live(client))) break; // the rest stays queued
      }
      // (asked after any wait: a live delivery may have written it meanwhile)
      if (opts.standing?.(client.id, queued, client) === "sent") continue;
      // the packet identifier it was sent with, or the session's next one
      const packet = qosPacket(queued, client, aedes);
      try {
        await persistence.outgoingUpdate(client, packet);
      } catch (err) {
        client.emit("error", err);
        continue;
      }
      if (packet.cmd === "publish" && !aedes.authorizeForward(client as unknown as Client, packet as never)) {
        await persistence.outgoingClearMessageId(client, packet);
        continue;
      }
      if (!live(client)) break;
      written++;
      if (!mqttPacket.writeToStream(packet, client.conn) && live(client)) {
        thisTurn = 0;
        if (await drained(client)) break; // drain timeout or closed: the rest stays queued
      }
    }
    return written;
  }
}
