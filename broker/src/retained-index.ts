import { Readable } from "node:stream";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { QlobberTrue } = require("qlobber") as {
  QlobberTrue: new (o: object) => { add(topic: string): void; test(topic: string): boolean };
};

/** The options aedes-persistence matches retained topics with (so the answers are the same). */
const QLOBBER_OPTIONS = { wildcard_one: "+", wildcard_some: "#", separator: "/" };

interface Node {
  children: Map<string, Node>;
  packet?: { topic: string; payload: Uint8Array };
}

interface RetainedStore {
  storeRetained(packet: { topic: string; payload: Uint8Array }): Promise<void>;
  createRetainedStream?(pattern: string): Readable;
  createRetainedStreamCombi?(patterns: string[]): AsyncIterable<unknown>;
}

/**
 * Retained messages indexed by topic level, for the in-memory persistence (docs/broker.md, "Throughput").
 *
 * aedes-persistence keeps retained messages in one Map and, for every SUBSCRIBE, tests *every* retained
 * topic against the filter. With a fleet each device retains `status` and `meta`, and subscribes to its own
 * `{site}/{kind}/{dev}/cmd/+` on connect — so connecting N devices cost O(N²): 10,000 devices came online
 * at ~100/s and slowing. Here a filter descends the tree along its literal leading levels
 * (`LL/fridge/F1/cmd`) and tests only the topics below that node, with the same qlobber matcher
 * aedes-persistence uses, so the answer is exactly the same set; a filter that starts with a wildcard
 * still visits everything, as before.
 */
export class RetainedIndex {
  readonly #root: Node = { children: new Map() };
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Store (or, for an empty payload, delete) the retained message of `packet.topic`. */
  store(packet: { topic: string; payload: Uint8Array }): void {
    const levels = packet.topic.split("/");
    if (packet.payload.length === 0) {
      this.#delete(this.#root, levels, 0);
      return;
    }
    let node = this.#root;
    for (const level of levels) {
      let next = node.children.get(level);
      if (!next) {
        next = { children: new Map() };
        node.children.set(level, next);
      }
      node = next;
    }
    if (!node.packet) this.#size++;
    node.packet = { ...packet };
  }

  /** The retained messages whose topics match `pattern` (MQTT filter syntax). */
  *match(pattern: string): Generator<{ topic: string; payload: Uint8Array }> {
    let node: Node | undefined = this.#root;
    for (const level of pattern.split("/")) {
      if (level === "+" || level === "#") break;
      node = node.children.get(level);
      if (!node) return;
    }
    const matcher = new QlobberTrue(QLOBBER_OPTIONS);
    matcher.add(pattern);
    for (const packet of walk(node)) if (matcher.test(packet.topic)) yield packet;
  }

  /** Replace `persistence`'s retained store by this index (storeRetained and both retained streams). */
  install(persistence: RetainedStore): void {
    persistence.storeRetained = async (packet) => this.store(packet);
    persistence.createRetainedStream = (pattern) => Readable.from(this.match(pattern));
    persistence.createRetainedStreamCombi = (patterns) => Readable.from(this.#matchAll(patterns));
  }

  *#matchAll(patterns: string[]): Generator<{ topic: string; payload: Uint8Array }> {
    for (const p of patterns) yield* this.match(p);
  }

  /** Remove the packet at `levels`, pruning nodes left empty. Returns whether `node` is now empty. */
  #delete(node: Node, levels: string[], i: number): boolean {
    if (i === levels.length) {
      if (node.packet) {
        node.packet = undefined;
        this.#size--;
      }
    } else {
      const child = node.children.get(levels[i] as string);
      if (child && this.#delete(child, levels, i + 1)) node.children.delete(levels[i] as string);
    }
    return node.packet === undefined && node.children.size === 0;
  }
}

function* walk(node: Node): Generator<{ topic: string; payload: Uint8Array }> {
  if (node.packet) yield node.packet;
  for (const child of node.children.values()) yield* walk(child);
}
