/**
 * A device session's QoS 1 messages sent and not yet acknowledged, in send order: a ring of packet
 * identifiers and frames, written in place.
 *
 * Why not a `Map<id, frame>` (which keeps insertion order too): with every device publishing once a second
 * and its PUBACK back within milliseconds, each device's map goes 0 → 1 → 0 entries every second, and V8
 * reallocates a `Map`'s table as it empties (~270 bytes per set + delete). The table allocated by the
 * delete then lives until the next publish a second later — long enough to survive two young-generation
 * collections and be promoted as garbage. In `bench:e2e` (10,000 devices) that was ~60 % of everything the
 * fleet process promoted, and its old generation's growth brought a full collection every ~35 s, whose
 * concurrent marking took a third of a core from the broker beside it (docs/benchmarks.md, sixteenth
 * session). Here the arrays are replaced only when the ring is full (holes squeezed out, or doubled).
 *
 * Identifiers are the caller's (the session numbers them upwards, as ESP-IDF's esp-mqtt does). PUBACKs
 * normally come in send order, so `remove` and `has` look at the oldest entry first; they scan the ring
 * otherwise — what is in flight is a handful of messages on a live link.
 */
export class Unacked {
  /** Packet identifier per slot (0 = none). */
  #ids: number[] = [0, 0, 0, 0];
  /** Frame per slot; `undefined` = free, or acknowledged out of order and not yet passed by `#head`. */
  #frames: (Buffer | undefined)[] = [undefined, undefined, undefined, undefined];
  /** Slot of the oldest entry. */
  #head = 0;
  /** Slots from `#head` on that are in use or holes (acknowledged out of order). */
  #span = 0;
  /** Entries not yet acknowledged. */
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Append a message just sent (or to be sent at the next CONNACK). */
  push(id: number, frame: Buffer): void {
    if (this.#span === this.#ids.length) this.#compactOrGrow();
    const slot = (this.#head + this.#span) & (this.#ids.length - 1);
    this.#ids[slot] = id;
    this.#frames[slot] = frame;
    this.#span++;
    this.#size++;
  }

  /** Forget the message with this identifier (its PUBACK came); false if none is in flight. */
  remove(id: number): boolean {
    const slot = this.#find(id);
    if (slot < 0) return false;
    this.#frames[slot] = undefined;
    this.#ids[slot] = 0;
    this.#size--;
    const mask = this.#ids.length - 1;
    while (this.#span > 0 && this.#frames[this.#head] === undefined) {
      this.#head = (this.#head + 1) & mask;
      this.#span--;
    }
    return true;
  }

  has(id: number): boolean {
    return this.#find(id) >= 0;
  }

  /** The frames in send order (for the resend after a reconnect). */
  *frames(): IterableIterator<Buffer> {
    const mask = this.#ids.length - 1;
    for (let i = 0; i < this.#span; i++) {
      const frame = this.#frames[(this.#head + i) & mask];
      if (frame !== undefined) yield frame;
    }
  }

  clear(): void {
    this.#frames.fill(undefined);
    this.#ids.fill(0);
    this.#head = 0;
    this.#span = 0;
    this.#size = 0;
  }

  #find(id: number): number {
    const mask = this.#ids.length - 1;
    for (let i = 0; i < this.#span; i++) {
      const slot = (this.#head + i) & mask;
      if (this.#ids[slot] === id && this.#frames[slot] !== undefined) return slot;
    }
    return -1;
  }

  /** The ring is full of entries and holes: squeeze the holes out, or double it when there are none. */
  #compactOrGrow(): void {
    const n = this.#ids.length;
    const size = this.#size < n ? n : n * 2;
    const ids = new Array<number>(size).fill(0);
    const frames = new Array<Buffer | undefined>(size).fill(undefined);
    let k = 0;
    for (let i = 0; i < this.#span; i++) {
      const slot = (this.#head + i) & (n - 1);
      const frame = this.#frames[slot];
      if (frame === undefined) continue;
      ids[k] = this.#ids[slot] as number;
      frames[k++] = frame;
    }
    this.#ids = ids;
    this.#frames = frames;
    this.#head = 0;
    this.#span = k;
  }
}
