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
 * beyond `maxDepth` the message is routed on the next turn of the event loop (setImmediate) with its
 * concurrency slot kept reserved, so message order and the concurrency bound are unchanged.
 */
export interface EmitterLike {
  current: number;
  _do(message: unknown, callback: unknown): unknown;
}

export function installEmitterTrampoline(mq: EmitterLike, opts: { maxDepth?: number; onDefer?: () => void } = {}): void {
  const maxDepth = opts.maxDepth ?? 64;
  const original = mq._do;
  let depth = 0;
  mq._do = function guardedDo(this: EmitterLike, message: unknown, callback: unknown) {
    if (depth >= maxDepth) {
      this.current++; // keep the slot: new emits queue behind this message instead of overtaking it
      opts.onDefer?.();
      setImmediate(() => {
        this.current--;
        mq._do(message, callback);
      });
      return this;
    }
    depth++;
    try {
      return original.call(this, message, callback);
    } finally {
      depth--;
    }
  };
}
