import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheTopicMatches, type TopicMatcher } from "../src/match-cache.ts";
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
