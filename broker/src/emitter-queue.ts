/**
 * Constant-time queues for Aedes's router (mqemitter 7), docs/broker.md "Routing backlog".
 *
 * mqemitter routes at most `concurrency` messages at once and parks the rest in two plain arrays,
 * taking the oldest with `Array.prototype.shift()`. V8 shifts a small array in constant time by moving
 * its start, but an array whose backing store is in the large-object space (more than ~16,000 entries)
 * cannot be moved: every `shift()` copies the whole remainder. Once a backlog passes that size, draining
 * it costs O(n²): with 10,000 devices connecting while a QoS 1 subscriber held the routing slots, a CPU
 * profile of the broker showed 57 % of its time in mqemitter's `released()` — the copy inside `shift()`
 * — so devices timed out their CONNECT, reconnected, and made the backlog longer.
 *
 * `Fifo` is a growable ring buffer with the three members mqemitter uses (`push`, `shift`, `length`);
 * `installFifoQueues` swaps it in for both arrays before the emitter routes anything. Order, the
 * concurrency bound and everything else about routing are unchanged.
 */
export class Fifo<T> {
  #ring: (T | undefined)[] = new Array<T | undefined>(16);
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(item: T): number {
    if (this.#length === this.#ring.length) {
      const bigger = new Array<T | undefined>(this.#ring.length * 2);
      for (let i = 0; i < this.#length; i++) bigger[i] = this.#ring[(this.#head + i) % this.#ring.length];
      this.#ring = bigger;
      this.#head = 0;
    }
    this.#ring[(this.#head + this.#length) % this.#ring.length] = item;
    return ++this.#length;
  }

  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#ring[this.#head];
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#length--;
    return item;
  }
}

export interface QueuedEmitter {
  _messageQueue: unknown;
  _messageCallbacks: unknown;
}

/** Replace mqemitter's backlog arrays (empty at start-up) with ring buffers. Returns false — and changes
 * nothing — if the emitter does not have them (another mqemitter version) or already holds a backlog. */
export function installFifoQueues(mq: Partial<QueuedEmitter>): boolean {
  const q = mq._messageQueue;
  const c = mq._messageCallbacks;
  if (!Array.isArray(q) || !Array.isArray(c) || q.length > 0 || c.length > 0) return false;
  mq._messageQueue = new Fifo();
  mq._messageCallbacks = new Fifo();
  return true;
}
