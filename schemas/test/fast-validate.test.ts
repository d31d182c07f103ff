import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { compiledSchema, isCompiled } from "../src/fast-validate.ts";
import {
  CommandReplySchema,
  CommandSchemas,
  EventSchema,
  MetaSchema,
  StatusSchema,
  TelemetrySchemas,
  typedArrayField,
} from "../src/messages.ts";
import { decodeCbor, encodeCbor, formatIssues } from "../src/codec.ts";
import { same } from "./same-value.ts";

/**
 * The compiled validator must be indistinguishable from the runtime zod parser it replaces: same
 * accept/reject, same output (defaults applied, typed arrays normalised, unknown keys stripped, keys in
 * the same order, `undefined` kept exactly where zod keeps it), same error text. Inputs come from an
 * arbitrary derived from each schema's own definition — valid values, values at and beyond every bound,
 * and values of the wrong kind at any node — and from flipping bytes of encoded valid messages.
 */

const SCHEMAS: Record<string, z.ZodType> = {
  ...Object.fromEntries(Object.entries(TelemetrySchemas).map(([k, s]) => [`telemetry/${k}`, s])),
  status: StatusSchema,
  meta: MetaSchema,
  event: EventSchema,
  ...Object.fromEntries(Object.entries(CommandSchemas).map(([k, s]) => [`cmd/${k}`, s as z.ZodType])),
  cmd_res: CommandReplySchema,
};

/** Assert the compiled schema answers `value` exactly as the runtime parser; returns whether it was accepted. */
function expectSameAnswer(schema: z.ZodType, value: unknown): boolean {
  const reference = schema.safeParse(value);
  const fast = compiledSchema(schema).safeParse(value);
  expect(fast.success).toBe(reference.success);
  if (reference.success && fast.success) {
    if (!same(fast.data, reference.data)) expect(fast.data).toStrictEqual(reference.data);
    expect(same(fast.data, reference.data)).toBe(true);
  } else if (!reference.success && !fast.success) {
    expect(formatIssues(fast.error)).toBe(formatIssues(reference.error));
  }
  return reference.success;
}

// ------------------------------------------------------------------ arbitraries from a schema definition

interface Check {
  check: string;
  value?: unknown;
  inclusive?: boolean;
  format?: string;
  minimum?: number;
  maximum?: number;
  pattern?: RegExp;
}
interface Def {
  type: string;
  checks?: { _zod: { def: Check } }[];
  [key: string]: unknown;
}
const defOf = (s: z.ZodType) => s._zod.def as unknown as Def;
const checksOf = (d: Def) => (d.checks ?? []).map((c) => c._zod.def);

/** Values of the wrong kind, and the numbers that trip careless comparisons. */
const strange: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(NaN, -0, 0.5, -1, Infinity, -Infinity, 2 ** 53, 65536, 256, 1e300, "", "1", "x", true, false, null, undefined),
  fc.constantFrom([], {}, [1, 2], new Date(0), new Map(), new Uint8Array(3), Object.create(null) as object),
  fc.anything({ maxDepth: 2, withTypedArray: true, withNullPrototype: true, withBigInt: true }),
);

function numberArb(d: Def, mutate: boolean): fc.Arbitrary<unknown> {
  let min = -1e6;
  let max = 1e6;
  let int = false;
  for (const c of checksOf(d)) {
    if (c.check === "greater_than") min = Number(c.value);
    else if (c.check === "less_than") max = Number(c.value);
    else if (c.check === "number_format") int = c.format?.includes("int") ?? false;
  }
  const inRange = int
    ? fc.integer({ min: Math.max(min, -(2 ** 53 - 1)), max: Math.min(max, 2 ** 53 - 1) })
    : fc.double({ min, max, noNaN: true });
  const edges = [min, max, 0, -0].filter((x) => x >= min && x <= max);
  if (!mutate) return fc.oneof({ weight: 6, arbitrary: inRange }, { weight: 1, arbitrary: fc.constantFrom(...edges) });
  const beyond = [min - 1, max + 1, min - 0.5, max + 0.5, min + 0.5].filter((x) => Number.isFinite(x));
  return fc.oneof(
    { weight: 4, arbitrary: inRange },
    { weight: 2, arbitrary: fc.constantFrom(...edges, ...beyond) },
    { weight: 1, arbitrary: fc.double() },
  );
}

function stringArb(d: Def, mutate: boolean): fc.Arbitrary<unknown> {
  let minLength = 0;
  let maxLength = 80;
  const patterns: RegExp[] = [];
  for (const c of checksOf(d)) {
    if (c.check === "min_length") minLength = c.minimum ?? 0;
    else if (c.check === "max_length") maxLength = c.maximum ?? maxLength;
    else if (c.check === "string_format" && c.pattern) patterns.push(c.pattern);
  }
  // zod counts code points: an astral character is one, though two UTF-16 units.
  const astral = (n: number) => "😀".repeat(n);
  const valid = patterns[0]
    ? fc.stringMatching(patterns[0]).filter((x) => x.length <= maxLength && patterns.every((p) => p.test(x)))
    : fc.string({ minLength, maxLength, unit: fc.constantFrom("a", "é", "😀", "-", " ") });
  if (!mutate) return valid;
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 1, arbitrary: fc.string({ minLength: Math.max(0, minLength - 1), maxLength: maxLength + 2, unit: "grapheme" }) },
    { weight: 1, arbitrary: fc.constantFrom(astral(maxLength), astral(maxLength + 1), "a".repeat(maxLength + 1), "", "a") },
  );
}

function typedArrayArb(schema: z.ZodType, mutate: boolean): fc.Arbitrary<unknown> | undefined {
  const f = typedArrayField(schema);
  if (!f) return undefined;
  const Ctor = f.name === "uint8" ? Uint8Array : Uint16Array;
  const Other = f.name === "uint8" ? Uint16Array : Uint8Array;
  const items = fc.integer({ min: 0, max: f.max });
  const exact = fc.array(items, { minLength: f.length, maxLength: f.length });
  if (!mutate) return fc.oneof({ weight: 2, arbitrary: exact.map((a) => Ctor.from(a)) }, { weight: 1, arbitrary: exact });
  const len = fc.constantFrom(f.length, f.length, f.length, f.length - 1, f.length + 1, 0);
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(items, { minLength: f.length, maxLength: f.length }).map((a) => Ctor.from(a)) },
    { weight: 3, arbitrary: fc.array(items, { minLength: f.length, maxLength: f.length }) },
    { weight: 1, arbitrary: len.chain((n) => fc.array(items, { minLength: n, maxLength: n }).map((a) => Ctor.from(a))) },
    { weight: 1, arbitrary: fc.array(fc.oneof(items, strange), { minLength: f.length, maxLength: f.length }) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.integer({ min: 0, max: 255 }), { minLength: f.length, maxLength: f.length })
        .map((a) => Other.from(a)),
    },
    { weight: 1, arbitrary: fc.array(items, { minLength: f.length, maxLength: f.length }).map((a) => Buffer.from(a)) },
  );
}

const EXTRA_KEYS = ["x", "extra", "constructor", "toString", "length", "0"];

/** Values for `schema`: mostly valid; with `mutate`, any node may instead hold a strange value. */
function arbitraryFor(schema: z.ZodType, mutate: boolean): fc.Arbitrary<unknown> {
  const node = nodeArb(schema, mutate);
  return mutate ? fc.oneof({ weight: 12, arbitrary: node }, { weight: 1, arbitrary: strange }) : node;
}

function nodeArb(schema: z.ZodType, mutate: boolean): fc.Arbitrary<unknown> {
  const typed = typedArrayArb(schema, mutate);
  if (typed) return typed;
  const d = defOf(schema);
  const inner = (key: string) => arbitraryFor(d[key] as z.ZodType, mutate);
  switch (d.type) {
    case "object": {
      const shape = d.shape as Record<string, z.ZodType>;
      const keys = Object.keys(shape);
      const model = Object.fromEntries(keys.map((k) => [k, arbitraryFor(shape[k]!, mutate)]));
      const optional = keys.filter((k) => shape[k]!._zod.optin !== undefined);
      const required = keys.filter((k) => !optional.includes(k));
      return fc
        .tuple(
          fc.record(model, { requiredKeys: required }),
          fc.dictionary(fc.constantFrom(...EXTRA_KEYS), strange, { maxKeys: mutate ? 2 : 1 }),
          fc.boolean(),
          mutate ? fc.subarray(required, { maxLength: 1 }) : fc.constant([]),
        )
        .map(([known, extra, extraFirst, missing]) => {
          const value: Record<string, unknown> = extraFirst ? { ...extra, ...known } : { ...known, ...extra };
          for (const k of missing) delete value[k];
          return value;
        });
    }
    case "number":
      return numberArb(d, mutate);
    case "string":
      return stringArb(d, mutate);
    case "boolean":
      return fc.boolean();
    case "null":
      return fc.constant(null);
    case "literal":
      return fc.constantFrom(...(d.values as unknown[]));
    case "enum":
      return fc.constantFrom(...Object.values(d.entries as Record<string, unknown>));
    case "optional":
      return fc.option(inner("innerType"), { nil: undefined });
    case "nullable":
      return fc.option(inner("innerType"), { nil: null });
    case "default":
      return fc.option(inner("innerType"), { nil: undefined });
    case "array": {
      const max = checksOf(d).find((c) => c.check === "max_length")?.maximum ?? 5;
      return fc.array(inner("element"), { maxLength: Math.min(mutate ? max + 1 : max, 18) });
    }
    case "record":
      return fc.dictionary(fc.string({ maxLength: 6 }), inner("valueType"), { maxKeys: 4 });
    case "union":
      return fc.oneof(...(d.options as z.ZodType[]).map((o) => arbitraryFor(o, mutate)));
    default:
      return fc.anything({ maxDepth: 2 });
  }
}

// ------------------------------------------------------------------ tests

interface Vector {
  topic: string;
  hex: string;
  json?: unknown;
}
const vectors = JSON.parse(readFileSync(new URL("../vectors/messages.json", import.meta.url), "utf8")) as Vector[];

/** The schema a golden vector's topic selects (the vectors cover telemetry, status, meta, event, cmd, cmd_res). */
function schemaForVector(topic: string): z.ZodType {
  const parts = topic.split("/");
  if (parts[3] === "telemetry") return SCHEMAS[`telemetry/${parts[1]}`]!;
  if (parts[3] === "cmd") return parts[5] === "res" ? CommandReplySchema : SCHEMAS[`cmd/${parts[4]}`]!;
  return SCHEMAS[parts[3]!]!;
}

describe("compiled validator (fast-validate)", () => {
  it("compiles every message schema (none falls back to the runtime parser)", () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) expect([name, isCompiled(schema)]).toEqual([name, true]);
  });

  it("returns the same schema object on every call (compiled once)", () => {
    expect(compiledSchema(StatusSchema)).toBe(compiledSchema(StatusSchema));
  });

  it("answers every golden vector exactly as zod does", () => {
    for (const v of vectors) {
      const raw = decodeCbor(Buffer.from(v.hex, "hex"));
      if (!raw.ok) continue;
      expectSameAnswer(schemaForVector(v.topic), raw.value);
    }
  });

  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`${name}: valid values — same acceptance and output as zod`, () => {
      let accepted = 0;
      fc.assert(
        fc.property(arbitraryFor(schema, false), (value) => {
          if (expectSameAnswer(schema, value)) accepted++;
        }),
        { numRuns: 300 },
      );
      // The arbitrary must exercise the success path, not only rejections.
      expect(accepted).toBeGreaterThan(60);
    });

    it(`${name}: mutated values — same acceptance, output and error text as zod`, () => {
      let rejected = 0;
      fc.assert(
        fc.property(arbitraryFor(schema, true), (value) => {
          if (!expectSameAnswer(schema, value)) rejected++;
        }),
        { numRuns: 600 },
      );
      expect(rejected).toBeGreaterThan(60);
    });

    it(`${name}: encoded then byte-flipped — same answer as zod on whatever decodes`, () => {
      fc.assert(
        fc.property(
          arbitraryFor(schema, false),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
          (value, flips) => {
            const ok = schema.safeParse(value);
            if (!ok.success) return;
            const bytes = Buffer.from(encodeCbor(ok.data));
            for (const [pos, b] of flips) bytes[pos % bytes.length] = b;
            const raw = decodeCbor(bytes);
            if (raw.ok) expectSameAnswer(schema, raw.value);
          },
        ),
        { numRuns: 200 },
      );
    });
  }

  it("keeps an explicitly undefined optional key, omits an absent one, and fills defaults, as zod does", () => {
    const base = { v: 1, dev: "D1", boot: 0, seq: 0, ts: 0, id: "r1" };
    for (const value of [
      { ...base, ok: true, err: undefined },
      { ...base, ok: true },
      { ...base, ok: true, data: { a: undefined } },
    ])
      expectSameAnswer(CommandReplySchema, value);
    expectSameAnswer(CommandSchemas.inspect, { id: "a", lot: "LL2512001" });
    expectSameAnswer(CommandSchemas.inspect, { id: "a", lot: "LL2512001", n: undefined });
    expectSameAnswer(CommandSchemas.fault, { id: "a", action: "inject" });
  });
});
