import { createRequire } from "node:module";
import { Redis } from "ioredis";
import type { Readable } from "node:stream";
import type { Logger } from "@esp-fleet/common/logger";
import { cacheSubscriptionsByTopic, type SubscriptionStore } from "./match-cache.ts";
import { OutgoingIndex, type OutgoingPersistence } from "./outgoing-index.ts";
import type { IdentifiersInUse } from "./packet-ids.ts";
import { RetainedIndex } from "./retained-index.ts";

const require = createRequire(import.meta.url);

/** The parts of an Aedes persistence this package wraps (Aedes 1.x calls them promise-style). */
interface PersistenceLike {
  outgoingEnqueue(sub: { clientId: string }, packet: unknown): Promise<void>;
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: { topic: string }): Promise<void>;
  outgoingUpdate(client: { id: string }, packet: unknown): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: unknown): Promise<unknown>;
  storeRetained(packet: { topic: string; payload: Uint8Array }): Promise<void>;
  createRetainedStream?(pattern: string): Readable;
  createRetainedStreamCombi?(patterns: string[]): AsyncIterable<unknown>;
  destroy?(): Promise<void>;
}

/** Persistence + emitter for Aedes: in memory (one node, lost on crash) or Redis (durable, clustered). */
export interface Backend {
  kind: "memory" | "redis";
  persistence: PersistenceLike;
  /** the mqemitter to hand Aedes (undefined = Aedes's own in-memory one) */
  mq: unknown;
  /** how many QoS>0 messages are queued for a session */
  queueLength(clientId: string): Promise<number>;
  /** how many retained messages are held, when the backend knows without scanning (the in-memory index) */
  retainedCount?(): number;
  /** the packet identifiers the session queues hold, when the backend knows without I/O (the in-memory
   * queues; packet-ids.ts) */
  idsInUse?: IdentifiersInUse;
  ping(): Promise<void>;
  close(): Promise<void>;
}

function redisOptions(url: string): { host: string; port: number; username?: string; password?: string; db?: number } {
  const u = new URL(url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  return {
    host: u.hostname || "127.0.0.1",
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined && Number.isInteger(db) ? { db } : {}),
  };
}

export async function createBackend(redisUrl: string | undefined, logger: Logger): Promise<Backend> {
  if (!redisUrl) {
    const memory = require("aedes-persistence") as () => PersistenceLike;
    const persistence = memory();
    // Retained messages indexed by topic level: a device's SUBSCRIBE no longer scans every retained message.
    const retained = new RetainedIndex();
    retained.install(persistence);
    // Session queues indexed by broker counter and packet identifier instead of scanned arrays: a
    // subscriber with thousands of messages in flight (ingest) no longer costs two scans per message.
    // …and a delivery's packet identifier unique within its session (packet-ids.ts)
    const outgoing = new OutgoingIndex({ uniqueIds: true });
    outgoing.install(persistence as unknown as OutgoingPersistence);
    // Which persistent sessions a topic's QoS > 0 messages are queued for, remembered per topic until a
    // subscription that could match it changes (match-cache.ts).
    cacheSubscriptionsByTopic(persistence as unknown as SubscriptionStore);
    return {
      kind: "memory",
      persistence,
      mq: undefined,
      queueLength: async (id) => outgoing.length(id),
      retainedCount: () => retained.size,
      idsInUse: {
        count: (id) => outgoing.idsHeld(id),
        onRelease: (listener) => (outgoing.onCleared = listener),
        standing: (id, packet, connection) => outgoing.standing(id, packet, connection),
      },
      ping: async () => {},
      close: async () => {},
    };
  }
  const options = redisOptions(redisUrl);
  const redisPersistence = require("aedes-persistence-redis") as (o: object) => PersistenceLike;
  const mqemitterRedis = require("mqemitter-redis") as (o: object) => { state: { on(e: string, f: (err: Error) => void): void } };
  // Our own connection for queue lengths and readiness (the persistence keeps its connection private).
  const admin = new Redis({ ...options, lazyConnect: true, maxRetriesPerRequest: 2 });
  admin.on("error", (err) => logger.warn({ err }, "redis connection error"));
  await admin.connect();
  const persistence = redisPersistence({ ...options, maxSessionDelivery: 100_000 });
  const mq = mqemitterRedis(options);
  mq.state.on("error", (err) => logger.warn({ err }, "redis emitter error"));
  return {
    kind: "redis",
    persistence,
    mq,
    // aedes-persistence-redis keeps a session's queue as the list `outgoing:{clientId}`
    queueLength: (id) => admin.llen(`outgoing:${id}`),
    ping: async () => {
      await admin.ping();
    },
    close: async () => {
      await persistence.destroy?.().catch(() => {});
      admin.disconnect();
    },
  };
}

export interface QueueLimitOptions {
  /** Queue bound for a session (0 = unlimited). */
  limitFor(clientId: string): number;
  /** False when every session is unlimited: nothing is installed. */
  anyLimit: boolean;
  isConnectedHere(clientId: string): boolean;
  onDrop(clientId: string, topic: string): void;
}

/** `isConnectedHere` for an Aedes instance: whether a client with that id is connected to it. */
export const connectedTo =
  (aedes: object) =>
  (id: string): boolean =>
    (aedes as { clients: Record<string, unknown> }).clients[id] !== undefined;

/**
 * Bound each offline persistent session's queue (MQTT_MAX_QUEUED_MESSAGES, or
 * MQTT_MAX_QUEUED_MESSAGES_SERVICE for a service account's session). Drop policy: when the
 * queue is full the *newest* message is not queued for that session (like Mosquitto's
 * max_queued_messages), counted in broker_offline_dropped_total and logged. Sessions connected to this
 * node are not limited here — their queue is the in-flight window, bounded by drainTimeout.
 */
export function limitOfflineQueues(
  persistence: PersistenceLike,
  opts: QueueLimitOptions,
  queueLength: (id: string) => Promise<number>,
): void {
  if (!opts.anyLimit) return;
  const combi = persistence.outgoingEnqueueCombi.bind(persistence);
  const update = persistence.outgoingUpdate.bind(persistence);
  const limited = async (subs: { clientId: string }[], packet: { topic: string }) => {
    const lengths = await Promise.all(
      subs.map((s) => (opts.isConnectedHere(s.clientId) || opts.limitFor(s.clientId) <= 0 ? 0 : queueLength(s.clientId))),
    );
    const kept = subs.filter((s, i) => {
      const limit = opts.limitFor(s.clientId);
      if (limit <= 0 || (lengths[i] ?? 0) < limit) return true;
      opts.onDrop(s.clientId, packet.topic);
      return false;
    });
    if (kept.length > 0) await combi(kept, packet);
  };
  // the common case, no persistent session subscribed, passes straight through
  persistence.outgoingEnqueueCombi = (subs, packet) => (subs.length === 0 ? combi(subs, packet) : limited(subs, packet));
  // A message dropped for a session that connects meanwhile is still delivered live; its missing queue
  // entry must not make Aedes disconnect the client ("no such packet").
  persistence.outgoingUpdate = async (client, packet) => {
    try {
      await update(client, packet);
    } catch (e) {
      if (!(e instanceof Error && e.message === "no such packet")) throw e;
    }
  };
}
