import { z } from "zod";
import {
  CommandReplySchema,
  CommandSchemas,
  EventSchema,
  FeedingRecordSchema,
  FridgeReadingSchema,
  MetaSchema,
  SqalSampleSchema,
  StatusSchema,
} from "./messages.ts";

/** Every wire message by file name, for the generated JSON Schema under schemas/json-schema/. */
export const WIRE_SCHEMAS: Record<string, z.ZodType> = {
  "telemetry-sqal": SqalSampleSchema,
  "telemetry-fridge": FridgeReadingSchema,
  "telemetry-gavage": FeedingRecordSchema,
  status: StatusSchema,
  meta: MetaSchema,
  event: EventSchema,
  "cmd-res": CommandReplySchema,
  ...Object.fromEntries(Object.entries(CommandSchemas).map(([name, s]) => [`cmd-${name}`, s])),
};

/**
 * JSON Schema (draft 2020-12) of a wire schema, as its CBOR payload looks before validation. Typed
 * arrays (RFC 8746 tags) have no JSON Schema form: they appear as arrays of integers, which is also what
 * the decode tool and the JSON mirror print.
 */
export function toWireJsonSchema(name: string, schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, {
    io: "input",
    unrepresentable: "any",
    override: (ctx) => {
      const s = ctx.jsonSchema as Record<string, unknown>;
      // Typed-array fields (messages.ts) carry their shape in metadata: render them as integer arrays.
      const typed = s.typedArray as { items: number; length: number } | undefined;
      if (typed) {
        delete s.typedArray;
        Object.assign(s, {
          type: "array",
          items: { type: "integer", minimum: 0, maximum: typed.items },
          minItems: typed.length,
          maxItems: typed.length,
        });
      }
      // z.instanceof(Uint8Array|Uint16Array) renders as {}: drop it from the union, keep the array form.
      if (Array.isArray(s.anyOf)) {
        const rest = (s.anyOf as Record<string, unknown>[]).filter((x) => Object.keys(x).length > 0);
        if (rest.length === 1) {
          delete s.anyOf;
          Object.assign(s, rest[0]);
        }
      }
    },
  }) as Record<string, unknown>;
  return { $id: `https://esp-fleet.local/schemas/${name}.json`, title: name, ...json };
}
