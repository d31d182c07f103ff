/**
 * Exact duplicate suppression for Aedes's deliveries (docs/broker.md, "Duplicate suppression").
 *
 * Aedes numbers every message when its publish starts (`brokerCounter`) and, before forwarding one to a
 * client, drops it unless its number is higher than the last one forwarded to that client
 * (lib/client.js `dedupe`, a high-water mark per broker id). It is there for overlapping subscriptions:
 * one routed message reaching the same client through two of its filters (`a/#` and `a/b`). But routing
 * order is not numbering order: a QoS 1/2 publish waits for the persistence (retained store, offline
 * enqueue) before it is routed, a QoS 0 one is routed at once, a routing deferred by the emitter
 * trampoline (overload.ts) waits for the next turn — and the overtaken message is then dropped for every
 * subscriber that has already been forwarded the later one. Silently, after its publisher got its PUBACK
 * (moscajs/aedes#994, #955; open upstream). For this system that is a reading that never reaches ingest.
 *
 * The replacement: the high-water mark is switched off per client (its table reads as empty and ignores
 * writes), and `isDuplicate` — called from the broker's `authorizeForward` — drops a message only when it
 * *is* the message last forwarded to that client. That is exact for overlapping subscriptions, because
 * mqemitter calls every matching subscription of one routed message in one synchronous loop
 * (fastparallel), so nothing else is forwarded to that client between the two calls. Nothing is ever
 * dropped for being late.
 */

/** Aedes's per-client `duplicates` table, made inert: every broker id reads as "nothing seen yet", writes
 * and deletes are ignored. One shared instance. */
const NOTHING_SEEN: Record<string, number> = new Proxy(Object.create(null) as Record<string, number>, {
  get: () => undefined,
  set: () => true,
  deleteProperty: () => true,
  has: () => false,
});

interface DedupeClient {
  duplicates: Record<string, number>;
  /** Broker id and counter of the message last forwarded to this client. */
  lastForwardedBroker?: string | undefined;
  lastForwardedCounter?: number;
}

interface NumberedPacket {
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
}

/** Switch off Aedes's high-water-mark dedupe for one client. Call before anything is forwarded to it
 * (the broker does it in `preConnect`). */
export function disableHighWaterDedupe(client: object): void {
  const c = client as DedupeClient;
  c.duplicates = NOTHING_SEEN;
  c.lastForwardedBroker = undefined;
  c.lastForwardedCounter = 0;
}

/** True when `packet` is the message last forwarded to `client` (a second matching subscription); false
 * otherwise, and then it is remembered as the last one. Messages without a broker number always pass.
 *
 * A persistent session's queue replayed at its reconnect passes too, unseen and unremembered: Aedes asks
 * `authorizeForward` for those as well (connect.js `emptyQueueFilter`, each a `QoSPacket` that already has
 * its packet identifier — a routed message has none yet), and a refusal there *deletes* the queued entry.
 * While a backlog is routed, the same message can reach a reconnected session both live and from its
 * queue; had the replay been refused as the duplicate of the live copy, the live copy would then find its
 * queue entry gone and never be written — a loss. Both copies go (QoS 1 allows the duplicate). */
export function isDuplicate(client: object, packet: NumberedPacket): boolean {
  const id = packet.brokerId;
  const counter = packet.brokerCounter;
  if (!id || !counter || typeof packet.messageId === "number") return false;
  const c = client as DedupeClient;
  if (c.lastForwardedCounter === counter && c.lastForwardedBroker === id) return true;
  c.lastForwardedBroker = id;
  c.lastForwardedCounter = counter;
  return false;
}
