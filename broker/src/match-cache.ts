/**
 * Remember which subscribers a topic matched until the subscriptions change (docs/broker.md, "Throughput").
 *
 * Aedes's in-memory router (mqemitter) asks its Qlobber trie for the subscribers of every message's
 * topic: split the topic into words, walk the trie, build a new array — 5 % of the broker's CPU in a
 * 1 → 1 profile, for an answer that only changes when someone subscribes or unsubscribes. This keeps the
 * answer per topic and forgets *all* of them on any `add`, `remove` or `clear`, so a subscription change
 * is seen by the very next message exactly as before. At most `maxTopics` topics are kept (then the
 * cache starts over), so a fleet of distinct device topics cannot grow it without bound; the default,
 * 100,000 (a few MB), holds every topic of 10,000 devices — with 10,000 the cache started over twice a
 * second under such a fleet and almost never hit. The cached
 * array is handed out as is: mqemitter only iterates it.
 */
export interface TopicMatcher {
  add(topic: string, value: unknown): unknown;
  remove(topic: string, value?: unknown): unknown;
  match(topic: string, ctx?: unknown): unknown[];
  clear?(): unknown;
}

export function cacheTopicMatches(matcher: TopicMatcher, maxTopics = 100_000): TopicMatcher {
  const cache = new Map<string, unknown[]>();
  const { add, remove, match, clear } = matcher;
  matcher.add = function cachedAdd(this: TopicMatcher, topic, value) {
    cache.clear();
    return add.call(this, topic, value);
  };
  matcher.remove = function cachedRemove(this: TopicMatcher, ...args: [string, unknown?]) {
    cache.clear();
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
      if (cache.size >= maxTopics) cache.clear();
      cache.set(topic, hit);
    }
    return hit;
  };
  return matcher;
}
