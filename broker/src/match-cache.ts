/**
 * Remember which subscribers a topic matched until a subscription that could match it changes
 * (docs/broker.md, "Throughput").
 *
 * Aedes asks two tries for the subscribers of every message's topic: its router's (mqemitter's Qlobber,
 * for the sessions connected now) and, for a QoS > 0 message, the persistence's (QlobberSub, for every
 * persistent session, to queue the message). Each match splits the topic into words, walks the trie and
 * builds a new array — 5 % of the broker's CPU in a 1 → 1 profile, and again as much under a fleet —
 * for an answer that only changes when someone subscribes or unsubscribes.
 *
 * {@link TopicMatchCache} keeps the answer per topic. A subscription change forgets only the topics the
 * filter could match: every topic a filter matches begins with the filter's literal levels (those before
 * its first wildcard), so topics are kept in buckets by their first `depth` levels — 3 by default, which is
 * `{site}/{kind}/{deviceId}` in DESIGN §2 — and a filter with at least that many literal levels (a device's
 * `{site}/{kind}/{id}/cmd/+`) forgets one device's bucket. A filter with fewer (ingest's `+/+/+/telemetry`,
 * `#`) forgets everything, as every change did before; so does a change the cache cannot attribute to a
 * filter (a whole session's subscriptions cleaned). Without this, each of the thousands of (re)connects of
 * a fleet emptied the cache, and a fleet's broker spent 7 % of its CPU in the tries.
 *
 * At most `maxTopics` topics are kept (then the cache starts over), so a fleet of distinct device topics
 * cannot grow it without bound; the default, 100,000 (a few MB), holds every topic of 10,000 devices —
 * with 10,000 the cache started over twice a second under such a fleet and almost never hit. The cached
 * arrays are handed out as they are: their users only iterate them.
 */
export class TopicMatchCache<V> {
  readonly #hits = new Map<string, V>();
  readonly #buckets = new Map<string, string[]>();
  #generation = 0;

  constructor(
    readonly maxTopics = 100_000,
    readonly depth = 3,
  ) {}

  /** Changes whenever something is forgotten: an answer computed under an older generation may be stale. */
  get generation(): number {
    return this.#generation;
  }

  get(topic: string): V | undefined {
    return this.#hits.get(topic);
  }

  set(topic: string, value: V): void {
    if (this.#hits.size >= this.maxTopics) this.clear();
    if (this.#hits.has(topic)) return void this.#hits.set(topic, value);
    this.#hits.set(topic, value);
    const key = leadingLevels(topic, this.depth);
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.push(topic);
    else this.#buckets.set(key, [topic]);
  }

  /** Forget every topic `filter` could match. */
  forget(filter: string): void {
    const key = literalBucket(filter, this.depth);
    if (key === undefined) return this.clear();
    this.#generation++;
    const bucket = this.#buckets.get(key);
    if (!bucket) return;
    for (const topic of bucket) this.#hits.delete(topic);
    this.#buckets.delete(key);
  }

  clear(): void {
    this.#generation++;
    this.#hits.clear();
    this.#buckets.clear();
  }
}

/** The first `depth` levels of a topic, or all of it when it has fewer. */
function leadingLevels(topic: string, depth: number): string {
  let at = -1;
  for (let i = 0; i < depth; i++) {
    at = topic.indexOf("/", at + 1);
    if (at < 0) return topic;
  }
  return topic.slice(0, at);
}

/**
 * The bucket holding every topic `filter` can match: its first `depth` levels when they are all literal,
 * or the whole filter when it is literal and shorter (it matches only itself); otherwise undefined.
 */
function literalBucket(filter: string, depth: number): string | undefined {
  const key = leadingLevels(filter, depth);
  for (const level of key.split("/")) if (level === "+" || level === "#") return undefined;
  // a shorter filter is literal and whole here: matched only by the topic equal to it, kept under itself
  return key;
}

export interface TopicMatcher {
  add(topic: string, value: unknown): unknown;
  remove(topic: string, value?: unknown): unknown;
  match(topic: string, ctx?: unknown): unknown[];
  clear?(): unknown;
}

/** The router's trie (mqemitter's Qlobber), answering from a {@link TopicMatchCache}. */
export function cacheTopicMatches(matcher: TopicMatcher, maxTopics = 100_000, depth = 3): TopicMatcher {
  const cache = new TopicMatchCache<unknown[]>(maxTopics, depth);
  const { add, remove, match, clear } = matcher;
  matcher.add = function cachedAdd(this: TopicMatcher, topic, value) {
    cache.forget(topic);
    return add.call(this, topic, value);
  };
  matcher.remove = function cachedRemove(this: TopicMatcher, ...args: [string, unknown?]) {
    cache.forget(args[0]);
    return remove.apply(this, args);
  };
  if (clear)
    matcher.clear = function cachedClear(this: TopicMatcher) {
      cache.clear();
      return clear.call(this);
    };
  matcher.match = function cachedMatch(this: TopicMatcher, topic, ctx) {
    if (ctx !== undefined) return match.call(this, topic, ctx);
    let hit = cache.get(topic);
    if (hit === undefined) {
      hit = match.call(this, topic);
      cache.set(topic, hit);
    }
    return hit;
  };
  return matcher;
}

/** The subscription side of an in-memory aedes-persistence, as Aedes calls it. */
export interface SubscriptionStore {
  subscriptionsByTopic(topic: string): Promise<unknown[]>;
  addSubscriptions(client: unknown, subs: { topic: string }[]): Promise<unknown>;
  removeSubscriptions(client: unknown, topics: string[]): Promise<unknown>;
  cleanSubscriptions(client: unknown): Promise<unknown>;
}

/**
 * The persistence's trie (which persistent sessions a QoS > 0 message is queued for), answering from a
 * {@link TopicMatchCache}. Only for a persistence whose subscriptions change solely through these calls
 * — the in-memory one; a shared (Redis) one learns other brokers' subscriptions behind them.
 * aedes-persistence changes its trie synchronously inside each call, so the cache forgets right after
 * the call; an answer still pending when something is forgotten is not kept.
 */
export function cacheSubscriptionsByTopic(store: SubscriptionStore, maxTopics = 100_000, depth = 3): TopicMatchCache<unknown[]> {
  const cache = new TopicMatchCache<unknown[]>(maxTopics, depth);
  const { subscriptionsByTopic, addSubscriptions, removeSubscriptions, cleanSubscriptions } = store;
  store.subscriptionsByTopic = function cachedSubscriptionsByTopic(this: SubscriptionStore, topic) {
    const hit = cache.get(topic);
    if (hit !== undefined) return Promise.resolve(hit);
    const generation = cache.generation;
    return subscriptionsByTopic.call(this, topic).then((subs) => {
      if (cache.generation === generation) cache.set(topic, subs);
      return subs;
    });
  };
  store.addSubscriptions = function cachedAddSubscriptions(this: SubscriptionStore, client, subs) {
    const done = addSubscriptions.call(this, client, subs);
    for (const s of subs) cache.forget(s.topic);
    return done;
  };
  store.removeSubscriptions = function cachedRemoveSubscriptions(this: SubscriptionStore, client, topics) {
    const done = removeSubscriptions.call(this, client, topics);
    for (const t of topics) cache.forget(t);
    return done;
  };
  store.cleanSubscriptions = function cachedCleanSubscriptions(this: SubscriptionStore, client) {
    const done = cleanSubscriptions.call(this, client);
    cache.clear();
    return done;
  };
  return cache;
}
