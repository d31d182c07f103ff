import { createRequire } from "node:module";
import { Readable } from "node:stream";

const require = createRequire(import.meta.url);
const AedesPacket = require("aedes-packet") as new (p: object) => QueuedPacket;

/**
 * Indexed QoS 1/2 session queues for aedes-persistence's in-memory store (docs/broker.md, "Session queues").
 *
 * aedes-persistence 11 keeps each persistent session's outgoing messages in one array and finds a packet
 * by scanning it: `outgoingUpdate` (every delivery to the session) from the front, `outgoingClearMessageId`
 * (every PUBACK) from the front plus a `splice`. For a subscriber that keeps thousands of messages in
 * flight — the ingest service acknowledges after each database commit, so one batch of 2,000 readings is
 * always outstanding — every message cost two scans of thousands of entries. With 10,000 device sessions
 * publishing into it the broker spent its CPU on those scans, its routing backlog grew without bound, and
 * devices still connecting timed out (bench:e2e).
 *
 * Here a session's queue is a doubly linked list in queue order with two indexes: by broker id + broker
 * counter (what `outgoingUpdate` looks for) and by packet identifier (what a PUBACK names). Every
 * operation is O(1) except where the original's answer depends on queue order among several candidates
 * (the same packet identifier twice — only after 65,535 identifiers in flight); then the oldest wins, as in
 * the scan. The results — which packet is updated, replaced, removed or streamed, and the errors — are the
 * original's: a property test runs both on the same operations.
 */
export type Standing = "absent" | "sent" | "queued";

export interface QueuedPacket {
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
  [k: string]: unknown;
}

interface Node {
  packet: QueuedPacket;
  /** the connection (Aedes client object) that last numbered it, with `uniqueIds` */
  sentOn?: object | undefined;
  seq: number;
  prev: Node | null;
  next: Node | null;
}

/** what a removed node holds instead of its packet */
const REMOVED: QueuedPacket = Object.freeze({});

class SessionQueue {
  head: Node | null = null;
  tail: Node | null = null;
  length = 0;
  #seq = 0;
  /** by broker counter (the broker id is compared on lookup: one node's packets all share it) */
  readonly byCounter: KeyIndex;
  readonly byMessageId: KeyIndex;

  constructor(opts: IndexOptions) {
    this.byCounter = new KeyIndex(counterOf, opts);
    this.byMessageId = new KeyIndex(messageIdOf, opts);
  }

  push(packet: QueuedPacket): void {
    const node: Node = { packet, seq: this.#seq++, prev: this.tail, next: null };
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.length++;
    this.byCounter.add(node);
    this.byMessageId.add(node);
  }

  /** The oldest node with `messageId` (optionally only among other brokers' packets). */
  firstWithId(messageId: number | undefined, notBroker?: string): Node | undefined {
    if (messageId === undefined) return undefined;
    return notBroker === undefined ? this.byMessageId.oldest(messageId, "any") : this.byMessageId.oldest(messageId, "other", notBroker);
  }

  /** The oldest node with this broker id and broker counter. */
  firstWithCounter(p: { brokerId?: string; brokerCounter?: number }): Node | undefined {
    if (p.brokerCounter === undefined) return undefined; // never equal to a stored packet's (a number)
    return this.byCounter.oldest(p.brokerCounter, "same", p.brokerId);
  }

  /** Whether a node other than `node` holds `messageId`. */
  heldByOther(messageId: number, node: Node): boolean {
    return this.byMessageId.heldByOther(messageId, node);
  }

  #nextFree = 1;

  /** A packet identifier no message of this queue holds, searching on from the last one given (so a
   * block of identifiers held by an earlier connection is crossed once, not per delivery); `undefined`
   * when all 65,535 are held. */
  freeId(): number | undefined {
    if (this.byMessageId.size >= 65535) return undefined;
    let id = this.#nextFree;
    for (let i = 0; i < 65535 && this.byMessageId.has(id); i++) id = id >= 65535 ? 1 : id + 1;
    this.#nextFree = id >= 65535 ? 1 : id + 1;
    return id;
  }

  setId(node: Node, messageId: number | undefined): void {
    this.byMessageId.drop(node);
    node.packet.messageId = messageId;
    this.byMessageId.add(node);
  }

  replace(node: Node, packet: QueuedPacket): void {
    this.byCounter.drop(node);
    this.byMessageId.drop(node);
    node.packet = packet;
    this.byCounter.add(node);
    this.byMessageId.add(node);
  }

  remove(node: Node): void {
    this.byCounter.drop(node);
    this.byMessageId.drop(node);
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    // Cut the removed node loose. A node in the old generation that is removed is garbage, but the young
    // generation's collections cannot know it: what it points to stays alive until promoted too. Its `next`
    // kept the node after it, and so on down the queue — every message's node, packet copy, payload and the
    // socket read holding that promoted, until a full collection, and the next promoted node started another
    // chain ("nepotism"; java.util.concurrent's queues unlink removed nodes for the same reason). Its packet
    // likewise, when V8 allocates the nodes old (allocation-site pretenuring, after a backlog).
    // docs/benchmarks.md, "End to end, fourteenth session".
    node.prev = null;
    node.next = null;
    node.packet = REMOVED;
    this.length--;
  }

  toArray(): QueuedPacket[] {
    const out: QueuedPacket[] = [];
    for (let n = this.head; n; n = n.next) out.push(n.packet);
    return out;
  }
}

// An index entry is the node with that key — almost always one, held as it is, so that a message in
// flight costs no array of its own — or, only for duplicates (the same packet enqueued twice, an identifier
// reused after 65,535 others) and keys with the same low bits, the list of them, where queue order decides.
type Entry = Node | Node[];
type Which = "any" | "same" | "other";

const counterOf = (n: Node): number | undefined => n.packet.brokerCounter;
const messageIdOf = (n: Node): number | undefined => n.packet.messageId;

export interface IndexOptions {
  /** a session's index starts with 2^initialSlotBits slots (default 4)… */
  initialSlotBits?: number;
  /** …and doubles whenever it holds more keys than slots, up to 2^slotBits (default 16: one per packet identifier) */
  slotBits?: number;
}

/**
 * A session queue's nodes by an integer key (broker counter, packet identifier): an array of slots, a key's
 * slot its low bits. Every lookup compares the key itself, since keys with the same low bits share a slot.
 * It starts at 16 slots and doubles whenever it holds more keys than slots, up to 2^16 (one per packet
 * identifier) — a session with thousands of messages in flight, as ingest's, ends there (512 KB). The array
 * is changed in place; only a doubling makes a new one.
 *
 * Not a `Map`, for the garbage collector (docs/benchmarks.md, "End to end, fourteenth session"). Under the
 * churn of a session queue — a key added and one removed per message — a `Map` rebuilds its table every
 * few thousand changes, and V8 keeps each obsolete table's entries and a link to its successor (for live
 * iterators). Once one obsolete table has reached the old generation, that link keeps every later table,
 * and the nodes, packets and payloads in them, alive through the young generation's collections until they
 * are promoted too (seen in about 1 run in 10 of broker/test/outgoing-index-gc.test.ts's first version,
 * with a `Map` index and removed nodes already unlinked). (In the thirteenth session this index was a `Map`
 * up to 1,024 keys and a fixed 2^16-slot array beyond; the tables' reallocation was what was seen then.)
 */
class KeyIndex {
  /** distinct keys held */
  size = 0;
  #slots: (Entry | undefined)[];
  #mask: number;
  readonly #maxSlots: number;

  constructor(
    readonly keyOf: (n: Node) => number | undefined,
    opts: IndexOptions,
  ) {
    const maxBits = opts.slotBits ?? 16;
    const bits = Math.min(opts.initialSlotBits ?? 4, maxBits);
    // (a holey array stays in V8's fast elements, up to 2^16 too: no dictionary)
    this.#slots = new Array<Entry | undefined>(2 ** bits);
    this.#mask = 2 ** bits - 1;
    this.#maxSlots = 2 ** maxBits;
  }

  #entry(key: number): Entry | undefined {
    return this.#slots[key & this.#mask];
  }

  has(key: number): boolean {
    const entry = this.#entry(key);
    if (entry === undefined) return false;
    if (!Array.isArray(entry)) return this.keyOf(entry) === key;
    for (const n of entry) if (this.keyOf(n) === key) return true;
    return false;
  }

  /** The oldest node with `key`: of any, or only of those whose packet has broker id `brokerId` ("same") or
   * not ("other"). (No predicate closure: this runs for every delivery and every PUBACK.) */
  oldest(key: number, which: Which, brokerId?: string): Node | undefined {
    const entry = this.#entry(key);
    if (entry === undefined) return undefined;
    if (!Array.isArray(entry)) return this.keyOf(entry) === key && accepts(entry, which, brokerId) ? entry : undefined;
    let best: Node | undefined;
    for (const n of entry) if (this.keyOf(n) === key && accepts(n, which, brokerId) && (!best || n.seq < best.seq)) best = n;
    return best;
  }

  /** Whether a node other than `node` has `key`. */
  heldByOther(key: number, node: Node): boolean {
    const entry = this.#entry(key);
    if (entry === undefined) return false;
    if (!Array.isArray(entry)) return entry !== node && this.keyOf(entry) === key;
    for (const n of entry) if (n !== node && this.keyOf(n) === key) return true;
    return false;
  }

  /** Index `node` under its key now (none: not indexed). */
  add(node: Node): void {
    const key = this.keyOf(node);
    if (key === undefined) return;
    if (!this.has(key) && ++this.size > this.#slots.length && this.#slots.length < this.#maxSlots) this.#grow();
    const i = key & this.#mask;
    this.#slots[i] = withNode(this.#slots[i], node);
  }

  /** Remove `node`, indexed under its key now, from the index. */
  drop(node: Node): void {
    const key = this.keyOf(node);
    if (key === undefined) return;
    const i = key & this.#mask;
    const entry = this.#slots[i];
    if (entry === undefined) return;
    if (!Array.isArray(entry)) {
      if (entry !== node) return;
      this.#slots[i] = undefined;
    } else {
      const at = entry.indexOf(node);
      if (at < 0) return;
      entry.splice(at, 1);
      if (entry.length <= 1) {
        this.#slots[i] = entry[0];
        entry.length = 0; // (a list left in the old generation must not hold on to its node)
      }
    }
    if (!this.has(key)) this.size--;
  }

  #grow(): void {
    const old = this.#slots;
    const slots = new Array<Entry | undefined>(old.length * 2);
    const mask = slots.length - 1;
    const put = (n: Node) => {
      const i = (this.keyOf(n) as number) & mask;
      slots[i] = withNode(slots[i], n);
    };
    for (const entry of old) {
      if (entry === undefined) continue;
      if (Array.isArray(entry)) entry.forEach(put);
      else put(entry);
    }
    old.fill(undefined); // (the same: the old array may be in the old generation)
    this.#slots = slots;
    this.#mask = mask;
  }
}

function withNode(entry: Entry | undefined, node: Node): Entry {
  if (entry === undefined) return node;
  if (Array.isArray(entry)) {
    entry.push(node);
    return entry;
  }
  return [entry, node];
}

function accepts(n: Node, which: Which, brokerId: string | undefined): boolean {
  return which === "any" || (n.packet.brokerId === brokerId) === (which === "same");
}

export interface OutgoingPersistence {
  outgoingEnqueue(sub: { clientId: string }, packet: object): Promise<void>;
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: object): Promise<void>;
  outgoingUpdate(client: { id: string }, packet: QueuedPacket): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<QueuedPacket | undefined>;
  outgoingStream(client: { id: string }): Readable;
}

/** The session queues, with the five methods of aedes-persistence's in-memory store that use them. */
export class OutgoingIndex {
  readonly #queues = new Map<string, SessionQueue>();
  /**
   * Keep packet identifiers unique within a session (docs/broker.md, "Packet identifiers in use"): a
   * delivery numbered with an identifier another queued message holds is given a free one instead —
   * `outgoingUpdate` changes the packet Aedes then writes. Off, the index answers exactly as
   * aedes-persistence does (the property test); the broker turns it on.
   */
  readonly uniqueIds: boolean;

  readonly #indexOptions: IndexOptions;

  constructor(opts: { uniqueIds?: boolean } & IndexOptions = {}) {
    this.uniqueIds = opts.uniqueIds ?? false;
    this.#indexOptions = { initialSlotBits: opts.initialSlotBits, slotBits: opts.slotBits };
  }
  /** told the session whenever a PUBACK removes one of its messages (packet-ids.ts) */
  onCleared: ((clientId: string) => void) | undefined;

  #queue(id: string): SessionQueue {
    let q = this.#queues.get(id);
    if (!q) {
      q = new SessionQueue(this.#indexOptions);
      this.#queues.set(id, q);
    }
    return q;
  }

  enqueue(clientId: string, packet: object): void {
    this.#queue(clientId).push(new AedesPacket(packet));
  }

  /** `connection`: the client object the packet is about to be written to (with `uniqueIds`). */
  update(clientId: string, packet: QueuedPacket, connection?: object): void {
    const q = this.#queue(clientId);
    const same = q.firstWithCounter(packet);
    const other = q.firstWithId(packet.messageId, packet.brokerId);
    // the scan stops at whichever comes first in queue order
    if (same && (!other || same.seq < other.seq)) {
      if (this.uniqueIds) {
        const id = packet.messageId;
        if (id !== undefined && q.heldByOther(id, same)) {
          const free = q.freeId();
          // Given twice, a PUBACK would remove the older message. The identifier gate keeps sessions below
          // this (packet-ids.ts); should anything get past it, the delivery fails — Aedes closes the
          // connection and the message stays queued for the next — rather than lose a message.
          if (free === undefined) throw new Error("no free packet identifier: all 65,535 are held by unacknowledged messages");
          packet.messageId = free;
        }
        same.sentOn = connection;
      }
      q.setId(same, packet.messageId);
    } else if (other) q.replace(other, packet);
    else throw new Error("no such packet");
  }

  /**
   * Where the message `packet` names (by broker id and counter) stands in the session's queue, for a
   * delivery to `connection`: "absent" (acknowledged already, or never queued), "sent" (already numbered
   * for this connection — written to it, or about to be), or "queued". A returning session can be sent one
   * message both from its replayed queue and live; a second copy would go out under a second identifier,
   * and the first, free again, could be given to another message before its late PUBACK removes that one.
   */
  standing(clientId: string, packet: { brokerId?: string; brokerCounter?: number }, connection: object): Standing {
    const node = this.#queues.get(clientId)?.firstWithCounter(packet);
    return node === undefined ? "absent" : node.sentOn === connection ? "sent" : "queued";
  }

  clear(clientId: string, messageId: number | undefined): QueuedPacket | undefined {
    const q = this.#queue(clientId);
    const node = q.firstWithId(messageId);
    if (!node) return undefined;
    const packet = node.packet;
    q.remove(node);
    this.onCleared?.(clientId);
    return packet;
  }

  packets(clientId: string): QueuedPacket[] {
    return this.#queues.get(clientId)?.toArray() ?? [];
  }

  length(clientId: string): number {
    return this.#queues.get(clientId)?.length ?? 0;
  }

  /** How many distinct packet identifiers the session's queued messages hold. */
  idsHeld(clientId: string): number {
    return this.#queues.get(clientId)?.byMessageId.size ?? 0;
  }

  /** Take over the outgoing-queue methods of an aedes-persistence in-memory instance (nothing queued yet). */
  install(persistence: OutgoingPersistence): void {
    persistence.outgoingEnqueue = async (sub, packet) => this.enqueue(sub.clientId, packet);
    persistence.outgoingEnqueueCombi = async (subs, packet) => {
      for (const s of subs) this.enqueue(s.clientId, packet);
    };
    persistence.outgoingUpdate = async (client, packet) => {
      // A delivery that runs after its connection closed (it waited for a turn or for 'drain') must not
      // number the queued message: the next connection's replay may already have passed it, and the
      // identifier would stay held until the one after (packet-ids.ts). Aedes then counts a write error.
      if ((client as { closed?: boolean }).closed) throw new Error("connection closed");
      this.update(client.id, packet, client);
    };
    persistence.outgoingClearMessageId = async (client, packet) => this.clear(client.id, packet.messageId);
    persistence.outgoingStream = (client) => Readable.from(this.packets(client.id));
  }
}
