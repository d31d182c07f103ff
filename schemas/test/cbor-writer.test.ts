import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCbor, encodeCborReference } from "../src/codec.ts";
import { encodeFast } from "../src/cbor-writer.ts";

const leaf = fc.oneof(
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }),
  fc.integer({ min: -100000, max: 100000 }).map((x) => x / 100),
  fc.constant(1_767_225_600_123),
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 70 }),
  fc.uint8Array({ maxLength: 70 }).map((a) => Buffer.from(a)),
  fc.array(fc.integer({ min: 0, max: 65535 }), { maxLength: 70 }).map((a) => new Uint16Array(a)),
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 70 }).map((a) => new Uint16Array(a)), // narrowed to tag 64
);
// `__proto__` as an own key: the reference path's copy step turns it into a prototype (drops it); never sent.
const key = fc.string({ maxLength: 10 }).filter((k) => k !== "__proto__");
const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("v"), { maxLength: 5 }), fc.dictionary(key, tie("v"), { maxKeys: 30 })),
})).v;

describe("encodeFast", () => {
  it("produces exactly the bytes of the cbor-x reference encoding", () => {
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 25 }), (obj) => {
        expect(Buffer.from(encodeFast(obj)).toString("hex")).toBe(Buffer.from(encodeCborReference(obj)).toString("hex"));
      }),
      { numRuns: 500 },
    );
  });

  it("returned buffers are independent of later encodes", () => {
    const a = encodeFast({ a: 1, s: "x".repeat(100) });
    const copy = Buffer.from(a);
    encodeFast({ b: 2, s: "y".repeat(70_000) });
    expect(Buffer.compare(a, copy)).toBe(0);
  });
});

describe("encodeCbor", () => {
  it("falls back to cbor-x for values the fast writer does not handle", () => {
    const withDate = { at: new Date(0) };
    expect(() => encodeFast(withDate)).toThrow(TypeError);
    expect(Buffer.from(encodeCbor(withDate))).toEqual(Buffer.from(encodeCborReference(withDate)));
  });
});

describe("uint16 arrays on the wire", () => {
  it("go as tag 64 (one byte each) when every value fits in a byte, else as tag 69", () => {
    expect(encodeCbor(new Uint16Array([0, 7, 255])).toString("hex")).toBe("d840430007ff");
    expect(encodeCbor(new Uint16Array([1, 256])).toString("hex")).toBe("d845440100" + "0001");
    expect(encodeCborReference(new Uint16Array([0, 7, 255])).toString("hex")).toBe("d840430007ff");
  });
});
