import { Readable } from "node:stream";
import type { Packet } from "mqtt";

type PacketCallback = (error?: Error, packet?: Packet) => void;

const MAX_ID = 65_535;

/**
 * A device's QoS 1 in-flight window: MQTT.js's `outgoingStore` and its `messageIdProvider` in one object
 * (their method names do not overlap), the way firmware keeps a small table of unacknowledged packets.
 *
 * - **Packet identifiers** are the lowest free ones (1, 2, 3 … as the window fills; 1 again once acked),
 *   never one whose packet is still stored, even after the provider is cleared at a CONNACK. MQTT.js's
 *   default provider counts up through 1 … 65 535 from a random start.
 * - **The stored packets** sit in an array indexed by identifier, with their insertion order for the resend
 *   after a reconnect (MQTT.js's default store is a `Map`).
 *
 * Why: with 10,000 devices each publishing once a second, the default pair allocated on every message and
 * kept it for a second — the `Map` reallocates its table when it empties, and ever-growing identifiers
 * keep `client.outgoing` in dictionary mode — which V8 promoted to the old generation as garbage (one
 * heap-sampling run: about half of everything promoted). Small identifiers keep `client.outgoing` a fast
 * array, and the table here is written in place. Behaviour on the wire is the same: every identifier is
 * unique among the packets in flight, and stored packets are resent in the order they were sent.
 * (It is MQTT.js's `IStore` except that `createStream` returns a `node:stream` Readable rather than a
 * `readable-stream` one, which MQTT.js reads the same way.)
 */
export class InflightWindow {
  /** Stored (unacknowledged) packets by identifier; `undefined` = none. */
  #packets: (Packet | undefined)[] = [];
  /** Insertion order of each stored packet. */
  #order: number[] = [];
  /** 1 = handed out by `allocate`/`register` and not yet deallocated. */
  #busy: number[] = [];
  #seq = 0;
  #stored = 0;
  /** No identifier below this is free. */
  #low = 1;
  #last: number | null = null;

  // ------------------------------------------------------------------- messageIdProvider (MQTT.js)

  allocate(): number | null {
    for (let id = this.#low; id <= MAX_ID; id++) {
      if (this.#busy[id] === 1 || this.#packets[id] !== undefined) continue;
      this.#busy[id] = 1;
      this.#low = id + 1;
      this.#last = id;
      return id;
    }
    return null;
  }

  getLastAllocated(): number | null {
    return this.#last;
  }

  register(id: number): boolean {
    if (this.#busy[id] === 1) return false;
    this.#busy[id] = 1;
    return true;
  }

  deallocate(id: number): void {
    if (this.#busy[id] !== 1) return;
    this.#busy[id] = 0;
    if (id < this.#low) this.#low = id;
  }

  /** At every CONNACK: nothing is handed out any more (stored packets keep their identifiers reserved). */
  clear(): void {
    this.#busy.fill(0);
    this.#low = 1;
  }

  // ------------------------------------------------------------------------- outgoingStore (MQTT.js)

  put(packet: Packet, cb?: () => void): this {
    const id = packet.messageId as number;
    if (this.#packets[id] === undefined) this.#stored++;
    this.#packets[id] = packet;
    this.#order[id] = this.#seq++;
    cb?.();
    return this;
  }

  get(packet: Pick<Packet, "messageId">, cb: PacketCallback): this {
    const stored = this.#packets[packet.messageId as number];
    if (stored) cb(undefined, stored);
    else cb(new Error("missing packet"));
    return this;
  }

  del(packet: Pick<Packet, "messageId">, cb: PacketCallback): this {
    const id = packet.messageId as number;
    const stored = this.#packets[id];
    if (stored) {
      this.#packets[id] = undefined;
      this.#stored--;
      cb(undefined, stored);
    } else cb?.(new Error("missing packet"));
    return this;
  }

  /** The stored (unacknowledged) packets, in the order they were stored. */
  stored(): Packet[] {
    const ids: number[] = [];
    for (let id = 1; id < this.#packets.length; id++) if (this.#packets[id] !== undefined) ids.push(id);
    ids.sort((a, b) => (this.#order[a] as number) - (this.#order[b] as number));
    return ids.map((id) => this.#packets[id] as Packet);
  }

  /** The stored packets in the order they were first sent (MQTT.js resends them after a CONNACK). */
  createStream(): Readable {
    const packets = this.stored();
    let i = 0;
    return new Readable({
      objectMode: true,
      read() {
        this.push(i < packets.length ? packets[i++] : null);
      },
    });
  }

  close(cb?: () => void): void {
    this.#packets = [];
    this.#order = [];
    this.#busy = [];
    this.#stored = 0;
    this.#low = 1;
    cb?.();
  }

  /** Number of stored (unacknowledged) packets. */
  get size(): number {
    return this.#stored;
  }
}
