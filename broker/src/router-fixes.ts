import type { Aedes } from "aedes";
import { installFifoQueues, type QueuedEmitter } from "./emitter-queue.ts";
import { cacheTopicMatches, type TopicMatcher } from "./match-cache.ts";
import { installEmitterTrampoline, type EmitterLike } from "./overload.ts";

type Router = EmitterLike & Partial<QueuedEmitter> & { _matcher?: TopicMatcher };

/**
 * The broker's fixes to Aedes's router (its mqemitter), in one place for `esp-fleet broker` and the
 * benchmarks' broker child (docs/broker.md, "Overload" and "Throughput"):
 * - the recursion guard, which keeps emit order while it defers (overload.ts);
 * - an O(1) routing backlog (emitter-queue.ts);
 * - the topic-match cache (match-cache.ts), with `cacheMatches` — only for Aedes's own in-memory emitter
 *   (mqemitter-redis is left alone).
 * Returns false when the backlog arrays were not where expected (another mqemitter version): the queue then
 * stays an array with an O(n) shift.
 */
export function installRouterFixes(aedes: Aedes, opts: { cacheMatches: boolean; onDefer?: () => void }): boolean {
  const mq = (aedes as unknown as { mq: Router }).mq;
  if (opts.cacheMatches && mq._matcher) cacheTopicMatches(mq._matcher);
  installEmitterTrampoline(mq, opts.onDefer ? { onDefer: opts.onDefer } : {});
  return installFifoQueues(mq);
}
