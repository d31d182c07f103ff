import { Decoder, Encoder, FLOAT32_OPTIONS } from "cbor-x";
import type { z } from "zod";
import { err, ok, type Result } from "@esp-fleet/common/errors";
import {
  CommandReplySchema,
  CommandSchemas,
  EventSchema,
  MetaSchema,
  StatusSchema,
  TelemetrySchemas,
  type CommandName,
} from "./messages.ts";
import { parseTopicCached, type ParsedTopic } from "./topics.ts";
import { encodeFast, fitsInBytes } from "./cbor-writer.ts";
import { compiledSchema } from "./fast-validate.ts";
import { NOT_HANDLED, readCbor } from "./cbor-reader.ts";

/**
 * The CBOR codec (DESIGN §3). Standard RFC 8949 only: no records, no bundled strings, no
 * self-describing extensions; maps sized minimally; numbers as the smallest integer or float that
 * round-trips their decimal value (float32 where it fits, else float64); Uint8Array/Uint16Array as
 * RFC 8746 tags 64/69, a Uint16Array whose values all fit in a byte as tag 64 (the smallest form). Decoding never throws: it returns where and why a payload is bad.
 */
const encoder = new Encoder({
  useRecords: false,
  bundleStrings: false,
  variableMapSize: true,
  useFloat32: FLOAT32_OPTIONS.DECIMAL_FIT,
  tagUint8Array: true,
  encodeUndefinedAsNil: false,
  pack: false,
});
// int64AsNumber: uint64 timestamps (ms since epoch exceed 2^32) decode as plain numbers.
// useFloat32 DECIMAL_FIT: a float32 decodes to the shortest decimal that round-trips (5.12, not 5.1199998).
const decoder = new Decoder({
  useRecords: false,
  mapsAsObjects: true,
  bundleStrings: false,
  useFloat32: FLOAT32_OPTIONS.DECIMAL_FIT,
  int64AsNumber: true,
} as ConstructorParameters<typeof Decoder>[0]);

/**
 * Encode a message as standard CBOR. Undefined fields are omitted. The allocation-light writer in
 * cbor-writer.ts handles every value a message holds; anything else (a Date, a Map, a bigint) goes
 * through cbor-x with the same rules.
 */
export function encodeCbor(value: unknown): Buffer {
  try {
    return encodeFast(value);
  } catch (e) {
    if (e instanceof TypeError) return encodeCborReference(value);
    throw e;
  }
}

/** The cbor-x encoding with the codec's rules: the reference the fast writer is tested against. */
export function encodeCborReference(value: unknown): Buffer {
  return encoder.encode(prepare(value));
}

const TWO_32 = 0x1_0000_0000;

/**
 * Omit undefined fields, narrow a Uint16Array whose values fit in a byte to a Uint8Array, and turn integers beyond 32 bits (ms timestamps) into BigInt so they go on the
 * wire as CBOR uint64/nint64 (major type 0/1) — cbor-x would otherwise write them as float64.
 */
function prepare(value: unknown): unknown {
  if (typeof value === "number") {
    return (value >= TWO_32 || value < -TWO_32) && Number.isSafeInteger(value) ? BigInt(value) : value;
  }
  if (value instanceof Uint16Array && fitsInBytes(value)) return Uint8Array.from(value);
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map(prepare);
  const out: Record<string, unknown> = {};
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = prepare(v);
  }
  return out;
}

/** Decode one CBOR item (any valid CBOR). Trailing bytes, truncation and invalid encodings are errors. */
export function decodeCbor(bytes: Uint8Array): Result<unknown, string> {
  if (bytes.length === 0) return err("empty payload");
  // The hot-path reader gives cbor-x's answer for the shapes devices send; anything else goes to cbor-x.
  const fast = readCbor(bytes);
  if (fast !== NOT_HANDLED) return ok(fast);
  return decodeCborReference(bytes);
}

/** cbor-x alone: the reference the hot-path reader is tested against, and the authority on every error. */
export function decodeCborReference(bytes: Uint8Array): Result<unknown, string> {
  if (bytes.length === 0) return err("empty payload");
  try {
    return ok(decoder.decode(bytes));
  } catch (e) {
    return err(`invalid CBOR: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export type DecodeStage = "topic" | "cbor" | "schema" | "utf8";

export interface DecodeFailure {
  stage: DecodeStage;
  /** One line naming the field and what is wrong, e.g. `tof.dist: expected 64 uint16 values, got 63`. */
  error: string;
  topic?: ParsedTopic;
  /** The CBOR value when it decoded but did not validate. */
  raw?: unknown;
}

export interface Decoded {
  topic: ParsedTopic;
  /** Which schema validated the payload, e.g. `telemetry/sqal`, `status`, `cmd/inspect`, `log`. */
  schema: string;
  message: unknown;
}

/** The zod schema for a device topic, with its name; undefined for `log` (UTF-8 text) and svc topics. */
export function schemaFor(topic: ParsedTopic): { name: string; schema: z.ZodType } | undefined {
  if (topic.type === "json") return undefined;
  if (topic.type === "svc") return undefined;
  switch (topic.channel) {
    case "telemetry":
      return { name: `telemetry/${topic.kind}`, schema: TelemetrySchemas[topic.kind] };
    case "status":
      return { name: "status", schema: StatusSchema };
    case "meta":
      return { name: "meta", schema: MetaSchema };
    case "event":
      return { name: "event", schema: EventSchema };
    case "cmd": {
      const schema = (CommandSchemas as Record<string, z.ZodType>)[topic.cmd];
      return schema ? { name: `cmd/${topic.cmd as CommandName}`, schema } : undefined;
    }
    case "cmd_res":
      return { name: "cmd_res", schema: CommandReplySchema };
    case "log":
      return undefined;
    default: {
      const never: never = topic;
      return never;
    }
  }
}

/** Render zod issues as one line: `path: message; path: message`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decode and validate a message received on `topic`. Never throws. `log` payloads are UTF-8 text;
 * `svc/…` payloads are decoded as CBOR without a device schema.
 */
export function decodeMessage(topic: string, bytes: Uint8Array): Result<Decoded, DecodeFailure> {
  const parsed = parseTopicCached(topic);
  if (!parsed.ok) return err({ stage: "topic", error: parsed.error });
  const t = parsed.value.type === "json" ? parsed.value.inner : parsed.value;
  if (t.type === "device" && t.channel === "log") {
    try {
      return ok({ topic: t, schema: "log", message: utf8.decode(bytes) });
    } catch {
      return err({ stage: "utf8", error: "log payload is not valid UTF-8", topic: t });
    }
  }
  const cbor = decodeCbor(bytes);
  if (!cbor.ok) return err({ stage: "cbor", error: cbor.error, topic: t });
  const entry = schemaFor(t);
  if (!entry) {
    if (t.type === "device" && t.channel === "cmd")
      return err({ stage: "schema", error: `unknown command ${JSON.stringify(t.cmd)}`, topic: t, raw: cbor.value });
    return ok({ topic: t, schema: "cbor", message: cbor.value });
  }
  // The compiled schema answers exactly as entry.schema.safeParse would (same data, same errors), faster.
  const result = compiledSchema(entry.schema).safeParse(cbor.value);
  if (!result.success)
    return err({ stage: "schema", error: `${entry.name}: ${formatIssues(result.error)}`, topic: t, raw: cbor.value });
  return ok({ topic: t, schema: entry.name, message: result.data });
}

/** Check a decoded message's device id against its topic's (a device may only speak for itself). */
export function envelopeMatchesTopic(decoded: Decoded): string | undefined {
  const m = decoded.message as { dev?: unknown } | null;
  if (decoded.topic.type !== "device" || decoded.topic.channel === "cmd" || decoded.topic.channel === "log") return undefined;
  if (m && typeof m === "object" && "dev" in m && m.dev !== decoded.topic.dev) {
    return `envelope dev ${JSON.stringify(m.dev)} does not match topic device ${JSON.stringify(decoded.topic.dev)}`;
  }
  return undefined;
}
