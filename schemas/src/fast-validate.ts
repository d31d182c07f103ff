import { z } from "zod";

/**
 * Compiled validators for the wire schemas (issue #2: decode+validate is the hot path of every SQAL
 * sample). zod's runtime parser walks one payload object per node and one call per check — ~10 µs for a
 * SQAL sample — while zod's own ahead-of-time compiler (`z.compile`, zod ≥ 4.4) turns the same schema
 * into one generated function of plain comparisons (~1.3 µs).
 *
 * Why zod's compiler rather than one of our own over `schema._zod.def`: it walks the same internals, is
 * kept in step with them by zod itself, and its fallback is the contract we need — a node it cannot model
 * makes `z.compile` return the schema unchanged (the runtime parser), and when the generated function
 * rejects a value, `safeParse` re-runs the runtime parser, so error text is exactly the runtime's. The
 * typed-array fields are `z.custom(field.accepts).transform(field.normalize)`; the generated code calls
 * those same two functions, so a change to `typedArray()` in messages.ts reaches both paths.
 * schemas/test/fast-validate.test.ts proves accept/reject and output identical to the runtime parser
 * over every message schema.
 */

const compiled = new WeakMap<z.ZodType, z.ZodType>();

/**
 * The compiled form of `schema`, built once per schema: `safeParse` returns the same result as the
 * runtime parser's (same data on success, same `ZodError` on failure) but ~8× faster on a valid SQAL
 * sample. Never throws: a schema zod cannot compile comes back as itself.
 */
export function compiledSchema<T extends z.ZodType>(schema: T): T {
  let c = compiled.get(schema);
  if (c === undefined) {
    c = z.compile(schema);
    compiled.set(schema, c);
  }
  return c as T;
}

/** Whether zod compiled `schema` (false: it runs on the runtime parser). For tests and the benchmark. */
export function isCompiled(schema: z.ZodType): boolean {
  try {
    z.compile(schema, { strict: true });
    return true;
  } catch {
    return false;
  }
}
