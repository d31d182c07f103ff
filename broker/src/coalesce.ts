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
}

export function coalesceWrites<S extends Corkable>(stream: S): S {
  const write = stream.write;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    stream.uncork();
  };
  stream.write = function coalescedWrite(this: S, ...args: never[]) {
    if (!scheduled) {
      scheduled = true;
      this.cork();
      setImmediate(flush);
    }
    return write.apply(this, args);
  } as S["write"];
  return stream;
}
