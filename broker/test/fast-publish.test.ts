import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { installFastPublish, type PacketParser } from "../src/fast-publish.ts";

const require = createRequire(import.meta.url);
type Packet = Record<string, unknown>;
const mqtt = require("mqtt-packet") as {
  generate(p: Packet): Buffer;
  parser(o?: object): PacketParser & {
    on(e: "packet", f: (p: Packet) => void): void;
    on(e: "error", f: (e: Error) => void): void;
  };
};

/** Feed `chunks` to a parser (with the fast path or without) and record what it emits, in order. */
function run(chunks: Buffer[], fast: boolean, maxPacketSize?: number): unknown[] {
  const parser = mqtt.parser();
  if (fast) installFastPublish(parser, maxPacketSize);
  const events: unknown[] = [];
  parser.on("packet", (p) => events.push({ ...p, payload: p.payload instanceof Buffer ? [...p.payload] : p.payload }));
  parser.on("error", (e) => events.push(`error: ${e.message}`));
  for (const c of chunks) parser.parse(c);
  return events;
}

/** `bytes` cut at the given points. */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of at) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  out.push(bytes.subarray(from));
  return out.filter((b) => b.length > 0);
}

const topic = fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }).filter((t) => !t.includes("\0"));
const publish = fc.record({
  cmd: fc.constant("publish"),
  topic,
  payload: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  qos: fc.constantFrom(0, 1, 2),
  messageId: fc.integer({ min: 1, max: 65535 }),
  retain: fc.boolean(),
  dup: fc.boolean(),
});
const puback = fc.record({ cmd: fc.constant("puback"), messageId: fc.integer({ min: 0, max: 65535 }) });
const other = fc.constantFrom<Packet>(
  { cmd: "pingreq" },
  { cmd: "pubrec", messageId: 8 },
  { cmd: "puback", messageId: 7 },
  { cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "a/+", qos: 1 }] },
  { cmd: "disconnect" },
);

describe("whole PUBLISH packets read without mqtt-packet's state machine", () => {
  it("emits what mqtt-packet emits, for random packet streams cut at random points", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof({ arbitrary: publish, weight: 4 }, { arbitrary: puback, weight: 2 }, { arbitrary: other, weight: 1 }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        (packets, points) => {
          const bytes = Buffer.concat(packets.map((p) => mqtt.generate(p)));
          const chunks = cut(bytes, points);
          const expected = run(chunks, false);
          expect(expected).toHaveLength(packets.length);
          expect(run(chunks, true)).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("refuses and reports what mqtt-packet refuses, in the same order, for corrupted streams", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ arbitrary: publish, weight: 3 }, { arbitrary: puback, weight: 1 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        (packets, flips, points) => {
          const bytes = Buffer.concat(packets.map((p) => mqtt.generate(p)));
          for (const f of flips) bytes[f.at % bytes.length] = f.value;
          const chunks = cut(bytes, points);
          expect(run(chunks, true)).toEqual(run(chunks, false));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("reads a persistent subscriber's run of PUBACKs as mqtt-packet's packet objects, and leaves MQTT 5's to the parser", () => {
    const acks = Buffer.concat(Array.from({ length: 100 }, (_, i) => mqtt.generate({ cmd: "puback", messageId: 65535 - i })));
    const got: Packet[] = [];
    const parser = mqtt.parser();
    installFastPublish(parser);
    parser.on("packet", (p) => got.push(p));
    expect(parser.parse(acks)).toBe(0);
    expect(got.map((p) => p.messageId)).toEqual(Array.from({ length: 100 }, (_, i) => 65535 - i));
    expect(got[0]!.constructor).toBe(require("mqtt-packet/packet.js"));
    expect(got[0]).toEqual({ cmd: "puback", retain: false, qos: 0, dup: false, length: 2, topic: null, payload: null, messageId: 65535 });
    // MQTT 5: a reason code and properties may follow; the parser reads those
    const v5 = mqtt.parser({ protocolVersion: 5 });
    installFastPublish(v5);
    const five: Packet[] = [];
    v5.on("packet", (p) => five.push(p));
    v5.parse(Buffer.from([0x40, 0x03, 0x00, 0x07, 0x10]));
    expect(five).toMatchObject([{ cmd: "puback", messageId: 7, reasonCode: 0x10 }]);
  });

  it("leaves a packet over the size limit to the parser (where the broker's guard refuses it)", () => {
    const big = mqtt.generate({ cmd: "publish", topic: "a/b", payload: Buffer.alloc(300), qos: 1, messageId: 5 });
    const small = mqtt.generate({ cmd: "publish", topic: "a/b", payload: Buffer.alloc(10), qos: 0 });
    const parser = mqtt.parser();
    const seen: string[] = [];
    // what guardPacketSize (broker.ts) wraps: the parser's length state
    const p = parser as unknown as { _parseLength(): boolean; packet: { length: number }; _emitError(e: Error): void };
    const parseLength = p._parseLength;
    p._parseLength = function (this: typeof p) {
      const ok = parseLength.call(this);
      if (ok && this.packet.length > 100) {
        this._emitError(new Error("too big"));
        return false;
      }
      return ok;
    };
    installFastPublish(parser, 100);
    parser.on("packet", (x) => seen.push(`packet ${String(x.length)}`));
    parser.on("error", (e) => seen.push(`error: ${e.message}`));
    parser.parse(Buffer.concat([small, big]));
    expect(seen).toEqual(["packet 15", "error: too big"]);
  });

  it("emits mqtt-packet's packet object, the payload a view into the read", () => {
    const bytes = mqtt.generate({
      cmd: "publish",
      topic: "site/fridge/fr-1/telemetry",
      payload: Buffer.from("xyz"),
      qos: 1,
      messageId: 9,
    });
    const parser = mqtt.parser();
    installFastPublish(parser);
    const got: Packet[] = [];
    parser.on("packet", (p) => got.push(p));
    expect(parser.parse(bytes)).toBe(0);
    expect(got).toHaveLength(1);
    expect(got[0]!.constructor).toBe(require("mqtt-packet/packet.js"));
    expect(got[0]).toEqual({
      cmd: "publish",
      retain: false,
      qos: 1,
      dup: false,
      length: bytes.length - 2,
      topic: "site/fridge/fr-1/telemetry",
      payload: Buffer.from("xyz"),
      messageId: 9,
    });
    expect((got[0]!.payload as Buffer).buffer).toBe(bytes.buffer);
  });
});
