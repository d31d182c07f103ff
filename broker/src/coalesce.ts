/**
 * Write coalescing for the sockets handed to Aedes (docs/broker.md, "Throughput").
 *
 * Aedes delivers every message from its own `setImmediate` callback (`lib/client.js` deliver0/deliverQoS),
 * and mqtt-packet corks the stream per packet and uncorks it on `process.nextTick` — which Node runs
 * after *each* immediate. So every outgoing packet became its own `writev` syscall: a fifth of the
 * broker's CPU in a 1 → 1 QoS 0 profile. Here the socket is corked at its first write of an event-loop
 * turn and uncorked by one `setImmediate`, so all packets written to it during that turn (the deliveries
 * of one check phase, the acknowledgements of one read) leave in a single `writev` — what Mosquitto
 * does by writing its per-client packet queue from its event loop.
 *
 * Semantics are unchanged: bytes and their order are the same (cork only delays the flush, and corks
 * nest, so mqtt-packet's own cork/uncork keeps working inside ours); back-pressure is unchanged because
 * `write()` still returns false once the buffered bytes (corked ones included) pass the high-water
 * mark, which is what Aedes waits on; `end()`/`destroy()` flush or discard as they would anyway. The
 * added latency is at most one event-loop turn.
 */
export interface Corkable {
  write(...args: never[]): boolean;
  cork(): void;
  uncork(): void;
  readonly writableCorked?: number;
  readonly writableLength: number;
}

/** Node's `write(chunk, encoding?, callback?)`, as the wrappers call it on. */
type Write = (this: unknown, chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;

export function coalesceWrites<S extends Corkable>(stream: S): S {
  const write = stream.write as Write;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    stream.uncork();
  };
  // (three parameters, not a rest array: Node's write() takes at most three, and this runs for every packet)
  stream.write = function coalescedWrite(this: S, chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (!scheduled) {
      scheduled = true;
      this.cork();
      flushSoon(flush);
    }
    return write.call(this, chunk, encoding, cb);
  } as S["write"];
  return stream;
}

/**
 * One `setImmediate` for every socket corked in a turn, not one each: under a fleet most sockets get one
 * packet a turn (a PUBACK), so the broker scheduled an immediate per message for it. The flushes run in
 * the order their sockets were first written; one added while they run (a socket written from within a
 * flush) gets an immediate of its own, as before.
 */
let pending: (() => void)[] = [];
let spare: (() => void)[] = [];
function flushAll(): void {
  const run = pending;
  pending = spare;
  let i = 0;
  try {
    for (; i < run.length; i++) run[i]!();
  } finally {
    // should a flush throw (uncork reports its errors through the stream, so it should not), the sockets
    // after it are still uncorked, each in an immediate of its own as before, and the error goes on
    for (i++; i < run.length; i++) setImmediate(run[i]!);
    run.length = 0;
    spare = run;
  }
}
function flushSoon(flush: () => void): void {
  if (pending.push(flush) === 1) setImmediate(flushAll);
}

/**
 * A higher write high-water mark for a connection the broker writes to (docs/broker.md, "Deliveries and
 * 'drain'"). Aedes routes at most `concurrency` messages at once, and a delivery whose `write()` returns
 * false keeps its slot until the socket emits 'drain' — one flush and one completed write later, i.e. two
 * or three event-loop turns. At a socket's default 16 KB that is ~150 fridge readings: a subscriber taking
 * the whole fleet's stream (ingest) crossed it in every turn, so most deliveries to it waited for 'drain' —
 * thousands a second in bench:e2e — and the router moved at most `concurrency` messages per two or three
 * turns, however promptly the subscriber read.
 *
 * Here `write()` reports back-pressure only past `highWaterMark` bytes. Semantics are otherwise Node's:
 * the bytes, their order and the buffering are unchanged, Node still emits 'drain' after any write its own
 * mark refused (the effective mark is the higher of the two, so ours refuses only when Node's does too),
 * and a subscriber that does not read still stops the broker — at `highWaterMark` bytes instead of 16 KB —
 * after which `drainTimeout` applies as before. The cost is memory: up to `highWaterMark` per connection
 * that is not read.
 */
export function raiseWriteHighWater<S extends Corkable>(stream: S, highWaterMark: number): S {
  const write = stream.write as Write;
  stream.write = function highWaterWrite(this: S, chunk: unknown, encoding?: unknown, cb?: unknown) {
    return write.call(this, chunk, encoding, cb) || this.writableLength < highWaterMark;
  } as S["write"];
  return stream;
}

/** Count the writes after which an Aedes client's deliveries wait for its socket to drain (Aedes 1.2's
 * `client.waitForDrain`; a client without that method, from another Aedes version, is left alone). */
export function countDrainWaits(client: object, count: () => void): void {
  const c = client as { waitForDrain?: (callback: unknown) => void };
  const wait = c.waitForDrain;
  if (typeof wait !== "function") return;
  c.waitForDrain = function countedWaitForDrain(callback) {
    count();
    wait.call(this, callback);
  };
}
