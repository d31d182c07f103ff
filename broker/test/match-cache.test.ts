import { createRequire } from "node:module";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheSubscriptionsByTopic, cacheTopicMatches, type SubscriptionStore, type TopicMatcher } from "../src/match-cache.ts";
import { closeClient, connect, startBroker, type TestBrokerHandle } from "./helpers.ts";

const require = createRequire(import.meta.url);
const { Qlobber } = require("qlobber") as { Qlobber: new (o: object) => TopicMatcher };
const options = { separator: "/", wildcard_one: "+", wildcard_some: "#", match_empty_levels: true };

describe("cacheTopicMatches", () => {
  it("answers exactly like the plain trie through adds, removes and clears", () => {
    const plain = new Qlobber(options);
    const cached = cacheTopicMatches(new Qlobber(options), 3);
    const topics = ["a/b", "a/c", "x/y/z", "a/b/c", "$SYS/x"];
    const same = () => {
      for (const t of topics) for (let i = 0; i < 2; i++) expect(cached.match(t)).toEqual(plain.match(t));
    };
    const both = (f: (m: TopicMatcher) => void) => {
      f(plain);
      f(cached);
      same();
    };
    same();
    both((m) => m.add("a/b", 1));
    both((m) => m.add("a/+", 2));
    both((m) => m.add("#", 3));
    both((m) => m.add("x/y/z", 4));
    both((m) => m.remove("a/+", 2));
    both((m) => m.remove("#"));
    both((m) => m.clear?.());
    both((m) => m.add("a/#", 5));
  });
});

// small alphabets, so that filters and topics collide often; "" is an empty level, "$SYS" a system topic
const level = fc.oneof({ arbitrary: fc.constantFrom("a", "b", ""), weight: 6 }, { arbitrary: fc.constant("$SYS"), weight: 1 });
const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join("/"));
const filter = fc
  .tuple(fc.array(fc.oneof(level, level, fc.constant("+")), { minLength: 0, maxLength: 5 }), fc.boolean())
  .map(([l, hash]) => [...l, ...(hash ? ["#"] : [])].join("/"))
  .filter((f) => f.length > 0);
const sorted = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).sort();

describe("cacheTopicMatches, random operations", () => {
  it.each([1, 2, 3])(
    "answers exactly like the plain trie, forgetting only what a change could match (buckets of %i levels)",
    (depth) => {
      const op = fc.oneof(
        fc.record({ op: fc.constant("add" as const), filter, value: fc.integer({ min: 1, max: 4 }) }),
        fc.record({ op: fc.constant("remove" as const), filter, value: fc.integer({ min: 1, max: 4 }) }),
        fc.record({ op: fc.constant("match" as const), topic }),
        fc.record({ op: fc.constant("clear" as const) }),
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 60, size: "max" }), fc.array(topic, { minLength: 1, maxLength: 8 }), (ops, probes) => {
          const plain = new Qlobber(options);
          const cached = cacheTopicMatches(new Qlobber(options), 50, depth);
          for (const o of ops) {
            if (o.op === "add") [plain, cached].forEach((m) => m.add(o.filter, o.value));
            else if (o.op === "remove") [plain, cached].forEach((m) => m.remove(o.filter, o.value));
            else if (o.op === "clear") [plain, cached].forEach((m) => m.clear?.());
            else expect(sorted(cached.match(o.topic))).toEqual(sorted(plain.match(o.topic)));
            for (const t of probes) expect(sorted(cached.match(t))).toEqual(sorted(plain.match(t)));
          }
        }),
        { numRuns: 300 },
      );
    },
  );
});

describe("cacheSubscriptionsByTopic (the persistence's trie), random operations", () => {
  const memory = require("aedes-persistence") as () => SubscriptionStore;
  it.each([1, 2, 3])(
    "answers exactly like aedes-persistence's own trie through subscribes, unsubscribes and cleans (buckets of %i levels)",
    async (depth) => {
      const client = fc.constantFrom("c1", "c2", "c3");
      const op = fc.oneof(
        fc.record({
          op: fc.constant("add" as const),
          client,
          subs: fc.array(fc.record({ topic: filter, qos: fc.constantFrom(0, 1, 2) }), { minLength: 1, maxLength: 3 }),
        }),
        fc.record({ op: fc.constant("remove" as const), client, topics: fc.array(filter, { minLength: 1, maxLength: 3 }) }),
        fc.record({ op: fc.constant("clean" as const), client }),
        fc.record({ op: fc.constant("match" as const), topic }),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { maxLength: 40, size: "max" }),
          fc.array(topic, { minLength: 1, maxLength: 6 }),
          async (ops, probes) => {
            const plain = memory();
            const cached = memory();
            cacheSubscriptionsByTopic(cached, 50, depth);
            const same = async (t: string) =>
              expect(sorted(await cached.subscriptionsByTopic(t))).toEqual(sorted(await plain.subscriptionsByTopic(t)));
            for (const o of ops) {
              if (o.op === "add") await Promise.all([plain, cached].map((p) => p.addSubscriptions({ id: o.client }, o.subs)));
              else if (o.op === "remove")
                await Promise.all([plain, cached].map((p) => p.removeSubscriptions({ id: o.client }, o.topics)));
              else if (o.op === "clean") await Promise.all([plain, cached].map((p) => p.cleanSubscriptions({ id: o.client })));
              else await same(o.topic);
              for (const t of probes) await same(t);
            }
          },
        ),
        { numRuns: 200 },
      );
    },
  );

  it("does not keep an answer computed before a subscription change it could not see", async () => {
    const store = (require("aedes-persistence") as () => SubscriptionStore)();
    cacheSubscriptionsByTopic(store);
    const before = store.subscriptionsByTopic("s1/fridge/d1/cmd/x"); // computed now, resolved later
    await store.addSubscriptions({ id: "c1" }, [{ topic: "s1/fridge/d1/cmd/+", qos: 1 } as { topic: string }]);
    expect(await before).toEqual([]);
    expect(await store.subscriptionsByTopic("s1/fridge/d1/cmd/x")).toMatchObject([{ clientId: "c1", qos: 1 }]);
  });
});

describe("broker with the topic-match cache", () => {
  let h: TestBrokerHandle;
  beforeAll(async () => {
    h = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_WS_ENABLED: "off" });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("a subscription made after a topic was routed gets the next message; an unsubscribed one does not", async () => {
    const pub = await connect(h.url, { clientId: "mc-pub" });
    const early = await connect(h.url, { clientId: "mc-early" });
    const earlyGot: string[] = [];
    early.on("message", (_t, p) => earlyGot.push(p.toString()));
    await early.subscribeAsync("mc/t", { qos: 1 });
    await pub.publishAsync("mc/t", "one", { qos: 1 });
    await pub.publishAsync("mc/t", "two", { qos: 1 }); // the topic's match is now cached

    const late = await connect(h.url, { clientId: "mc-late" });
    const lateGot: string[] = [];
    late.on("message", (_t, p) => lateGot.push(p.toString()));
    await late.subscribeAsync("mc/+", { qos: 1 });
    await pub.publishAsync("mc/t", "three", { qos: 1 });
    await early.unsubscribeAsync("mc/t");
    await pub.publishAsync("mc/t", "four", { qos: 1 });

    const deadline = Date.now() + 5000;
    while (lateGot.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    expect(earlyGot).toEqual(["one", "two", "three"]);
    expect(lateGot).toEqual(["three", "four"]);
    await Promise.all([closeClient(pub), closeClient(early), closeClient(late)]);
  });
});
