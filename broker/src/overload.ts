/**
 * Guard against Aedes/mqemitter's synchronous recursion under load (docs/broker.md, "Overload").
 *
 * mqemitter routes at most `concurrency` messages at once and queues the rest. When a routed message
 * completes, `released()` takes the next queued one and calls `_do()`, which calls fastparallel with the
 * matching subscribers. A message nobody subscribes to completes *synchronously*, so `released()` runs
 * again inside the same stack: released → _do → parallel → (Aedes publish callback → client nextBatch →
 * socket read → parse → more publishes) → released → … With a backlog of thousands of unsubscribed
 * messages (for instance while a frozen subscriber holds the slots until `drainTimeout`) the stack
 * overflows: `RangeError: Maximum call stack size exceeded` (moscajs/aedes#193, mcollina/mqemitter#204).
 *
 * The fix keeps the fast path untouched and only counts how deep `_do` is nested in the current stack;
 * beyond `maxDepth` the message is routed on a later turn of the event loop (setImmediate) with its
 * concurrency slot kept reserved. While any message waits there, every later one waits behind it, so
 * routing order stays emit order: a message routed ahead of an older one would be lost to every
 * subscriber with Aedes's own duplicate check (dedupe.ts), and would break the per-publisher order MQTT
 * promises in any case.
 */
export interface EmitterLike {
  current: number;
  _do(message: unknown, callback: unknown): unknown;
}

export function installEmitterTrampoline(mq: EmitterLike, opts: { maxDepth?: number; onDefer?: () => void } = {}): void {
  const maxDepth = opts.maxDepth ?? 64;
  const original = mq._do;
  let depth = 0;
  /** Messages and their callbacks (pairs) waiting for a later turn, in emit order, from `head` on. */
  let waiting: unknown[] = [];
  let head = 0;
  let scheduled = false;
  const routeNow = (message: unknown, callback: unknown): unknown => {
    depth++;
    try {
      return original.call(mq, message, callback);
    } finally {
      depth--;
    }
  };
  // The messages waiting at the start of a turn; whatever their routing emits joins the tail, behind the
  // older ones, and goes on the next turn.
  const drain = () => {
    scheduled = false;
    const end = waiting.length;
    while (head < end) {
      const message = waiting[head];
      const callback = waiting[head + 1];
      waiting[head] = waiting[head + 1] = undefined;
      head += 2;
      mq.current--;
      routeNow(message, callback);
    }
    if (head < waiting.length) {
      // routed entries stay as holes at the front until the list empties; drop them if it never does
      if (head >= 4096) {
        waiting = waiting.slice(head);
        head = 0;
      }
      if (!scheduled) {
        scheduled = true;
        setImmediate(drain);
      }
    } else {
      waiting = [];
      head = 0;
    }
  };
  mq._do = function guardedDo(this: EmitterLike, message: unknown, callback: unknown) {
    if (depth < maxDepth && head === waiting.length) return routeNow(message, callback);
    this.current++; // keep the slot: the concurrency bound still holds
    (this as { _doing?: boolean })._doing = true; // a routing is under way (mqemitter's leak check reads it)
    opts.onDefer?.();
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
    waiting.push(message, callback);
    return this;
  };
}
