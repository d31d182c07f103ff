import fc from "fast-check";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { Fifo, installFifoQueues } from "../src/emitter-queue.ts";

const require = createRequire(import.meta.url);

describe("Fifo (mqemitter's routing backlog)", () => {
  it("property: push/shift/length behave as an array used as a queue", () => {
    const op = fc.oneof(
      fc.integer().map((n) => ({ push: n })),
      fc.constant({ shift: true as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 500, size: "max" }), (ops) => {
        const q = new Fifo<number>();
        const model: number[] = [];
        for (const o of ops) {
          if ("push" in o) expect(q.push(o.push)).toBe(model.push(o.push));
          else expect(q.shift()).toBe(model.shift());
          expect(q.length).toBe(model.length);
        }
      }),
    );
  });

  it("swapped into a real mqemitter: a backlog far past the concurrency bound is routed in order", async () => {
    const mqemitter = require("mqemitter") as (o: { concurrency: number }) => {
      on(topic: string, fn: (m: { topic: string; n: number }, done: () => void) => void): void;
      emit(m: { topic: string; n: number }, cb?: () => void): void;
      length: number;
      _messageQueue: unknown;
      _messageCallbacks: unknown;
    };
    const mq = mqemitter({ concurrency: 10 });
    expect(installFifoQueues(mq)).toBe(true);
    expect(mq._messageQueue).toBeInstanceOf(Fifo);
    const seen: number[] = [];
    // A slow subscriber: every delivery completes on a later turn, so the backlog builds up.
    mq.on("a/+", (m, done) => {
      seen.push(m.n);
      setImmediate(done);
    });
    const N = 30_000;
    let routed = 0;
    for (let n = 0; n < N; n++) mq.emit({ topic: `a/${n % 7}`, n }, () => routed++);
    expect(mq.length).toBe(N - 10);
    while (routed < N) await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(mq.length).toBe(0);
  });

  it("leaves an emitter it does not recognise, or one already holding a backlog, unchanged", () => {
    expect(installFifoQueues({})).toBe(false);
    const busy = { _messageQueue: [1], _messageCallbacks: [() => undefined] };
    expect(installFifoQueues(busy)).toBe(false);
    expect(Array.isArray(busy._messageQueue)).toBe(true);
  });
});
