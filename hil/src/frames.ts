import { z } from "zod";
import { err, ok, type Result } from "@esp-fleet/common/errors";
import { decodeCbor, DEVICE_CHANNELS, DeviceKindSchema, encodeCbor, formatIssues, SegmentSchema } from "@esp-fleet/schemas";
import { cobsDecode, cobsEncodeInto, cobsMaxEncodedLength } from "./cobs.ts";
import { crc32 } from "./crc32.ts";

/**
 * The serial link's frames (DESIGN §4):
 *
 *     COBS( type:u8 ‖ body ‖ crc32-le(type ‖ body) ) ‖ 0x00
 *
 * `body` is one CBOR map. The CRC-32 (zlib) covers the type byte and the body, little-endian. A frame
 * whose decoded size (type + body + CRC) exceeds MAX_FRAME_LENGTH is refused by both ends.
 * Pure code: no I/O, no clock.
 */
export const PROTOCOL_VERSION = 1;
/** Largest decoded frame, type + body + CRC, in bytes. */
export const MAX_FRAME_LENGTH = 4096;
/** Largest encoded frame on the wire, without its 0x00 delimiter. */
export const MAX_ENCODED_LENGTH = cobsMaxEncodedLength(MAX_FRAME_LENGTH);

export const FRAME_TYPE = {
  hello: 0x01,
  publish: 0x02,
  command: 0x03,
  ack: 0x04,
  heartbeat: 0x05,
} as const;
export type FrameTypeName = keyof typeof FRAME_TYPE;
const TYPE_NAMES = new Map<number, FrameTypeName>(Object.entries(FRAME_TYPE).map(([k, v]) => [v, k as FrameTypeName]));

const u32 = z.number().int().min(0).max(0xffff_ffff);
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, "expected a byte string");

/**
 * `hello`, device → host: who is on the line. Sent at boot and whenever the host asks (a host `hello`).
 * A hello with a new `sid` starts a new session: the receiver forgets the link numbers it has seen.
 */
export const DeviceHelloSchema = z.object({
  role: z.literal("device"),
  proto: z.literal(PROTOCOL_VERSION).describe("serial protocol version"),
  dev: SegmentSchema.describe("device id"),
  kind: DeviceKindSchema,
  site: SegmentSchema,
  fw: z.string().max(32).describe("firmware version"),
  caps: z.array(z.string().max(32)).max(32).describe("capabilities: sensors and commands, e.g. tof, spectral, cmd:inspect"),
  boot: u32.describe("boot counter"),
  hb: z
    .number()
    .int()
    .min(100)
    .max(600_000)
    .describe("heartbeat interval, ms; the host declares the device silent after 3 missed"),
  sid: u32.describe("link session id, new at every start of the sender's link; its link numbering restarts with it"),
  will: bytes
    .optional()
    .describe("the device's `status: offline` payload: the host's MQTT will, and what it publishes when the device goes silent"),
});
export type DeviceHello = z.infer<typeof DeviceHelloSchema>;

/** `hello`, host → device: asks the device to introduce itself (answered by a device hello). */
export const HostHelloSchema = z.object({
  role: z.literal("host"),
  proto: z.literal(PROTOCOL_VERSION),
  sid: u32.describe("link session id of the host"),
  ask: z
    .boolean()
    .optional()
    .describe("a request: the device answers with its hello (unset on the host's reply to a device hello)"),
});
export type HostHello = z.infer<typeof HostHelloSchema>;

export const HelloSchema = z.discriminatedUnion("role", [DeviceHelloSchema, HostHelloSchema]);
export type Hello = z.infer<typeof HelloSchema>;

/** Channels a device publishes on over the link: its MQTT channels plus command replies. */
export const LINK_CHANNELS = [...DEVICE_CHANNELS, "cmd_res"] as const;
export type LinkChannel = (typeof LINK_CHANNELS)[number];

/**
 * `publish`, device → host: one MQTT message for the device's own topic. `p` is the exact MQTT payload
 * (CBOR message with its envelope, or UTF-8 text for `log`), carried as a CBOR byte string, so the
 * bridge forwards it unchanged. `ls` is the link sequence number the host acknowledges.
 */
export const PublishSchema = z
  .object({
    ls: u32.describe("link sequence number"),
    ch: z.enum(LINK_CHANNELS),
    cmd: SegmentSchema.optional().describe("command name, for ch = cmd_res"),
    p: bytes.describe("MQTT payload"),
  })
  .refine((f) => (f.ch === "cmd_res") === (f.cmd !== undefined), {
    message: "cmd is required for ch cmd_res and only then",
    path: ["cmd"],
  });
export type Publish = z.infer<typeof PublishSchema>;

/** `command`, host → device: a command received on `cmd/{name}`, payload unchanged. */
export const CommandFrameSchema = z.object({
  ls: u32.describe("link sequence number"),
  name: SegmentSchema.describe("command name"),
  p: bytes.describe("MQTT payload of the command (CBOR)"),
});
export type CommandFrame = z.infer<typeof CommandFrameSchema>;

/** `ack`: the receiver of a publish or command acknowledges its link sequence number. */
export const AckSchema = z.object({ ls: u32 });
export type Ack = z.infer<typeof AckSchema>;

/** `heartbeat`, device → host: liveness between messages, with the device's own link counters. */
export const HeartbeatSchema = z.object({
  up: z.number().int().nonnegative().describe("ms since boot"),
  tx: u32.optional().describe("reliable frames sent"),
  rt: u32.optional().describe("retransmissions"),
  bad: u32.optional().describe("frames the device dropped (CRC/COBS)"),
});
export type Heartbeat = z.infer<typeof HeartbeatSchema>;

export type Frame =
  | { type: "hello"; body: Hello }
  | { type: "publish"; body: Publish }
  | { type: "command"; body: CommandFrame }
  | { type: "ack"; body: Ack }
  | { type: "heartbeat"; body: Heartbeat };

const BODY_SCHEMAS: Record<FrameTypeName, z.ZodType> = {
  hello: HelloSchema,
  publish: PublishSchema,
  command: CommandFrameSchema,
  ack: AckSchema,
  heartbeat: HeartbeatSchema,
};

/** Why a block between two delimiters is not a frame. */
export type FrameError =
  | { kind: "cobs"; error: string }
  | { kind: "length"; error: string }
  | { kind: "crc"; error: string }
  | { kind: "type"; error: string }
  | { kind: "body"; error: string };

/** CBOR byte strings must be plain (major type 2), not RFC 8746 tag 64: wrap them as Buffers. */
function forWire(body: unknown): unknown {
  const b = body as Record<string, unknown>;
  if (b && typeof b === "object" && b.p instanceof Uint8Array && !Buffer.isBuffer(b.p)) {
    return { ...b, p: Buffer.from(b.p.buffer, b.p.byteOffset, b.p.byteLength) };
  }
  return body;
}

/** The decoded frame content: type ‖ CBOR body ‖ CRC-32 LE. Throws RangeError beyond MAX_FRAME_LENGTH. */
export function framePayload(frame: Frame): Uint8Array {
  const body = encodeCbor(forWire(frame.body));
  const n = 1 + body.length + 4;
  if (n > MAX_FRAME_LENGTH) throw new RangeError(`${frame.type} frame of ${n} bytes exceeds ${MAX_FRAME_LENGTH}`);
  const raw = new Uint8Array(n);
  raw[0] = FRAME_TYPE[frame.type];
  raw.set(body, 1);
  const crc = crc32(raw, 0, n - 4);
  raw[n - 4] = crc & 0xff;
  raw[n - 3] = (crc >>> 8) & 0xff;
  raw[n - 2] = (crc >>> 16) & 0xff;
  raw[n - 1] = (crc >>> 24) & 0xff;
  return raw;
}

/** A complete frame on the wire, trailing 0x00 included. */
export function encodeFrame(frame: Frame): Uint8Array {
  const raw = framePayload(frame);
  const out = new Uint8Array(cobsMaxEncodedLength(raw.length) + 1);
  const n = cobsEncodeInto(raw, out);
  out[n] = 0;
  return out.subarray(0, n + 1);
}

/**
 * Decode one block found between two 0x00 delimiters. Never throws. The CRC is checked before the
 * CBOR is parsed, so a corrupted frame is never accepted; a valid CRC over an invalid body (a peer's bug,
 * not noise) is a `body` error.
 */
export function decodeFrame(block: Uint8Array): Result<Frame, FrameError> {
  if (block.length > MAX_ENCODED_LENGTH)
    return err({ kind: "length", error: `block of ${block.length} bytes exceeds ${MAX_ENCODED_LENGTH}` });
  const raw = cobsDecode(block);
  if (!raw) return err({ kind: "cobs", error: "invalid COBS encoding" });
  if (raw.length < 6) return err({ kind: "length", error: `frame of ${raw.length} bytes is too short` });
  if (raw.length > MAX_FRAME_LENGTH)
    return err({ kind: "length", error: `frame of ${raw.length} bytes exceeds ${MAX_FRAME_LENGTH}` });
  const n = raw.length;
  const want = (raw[n - 4]! | (raw[n - 3]! << 8) | (raw[n - 2]! << 16) | (raw[n - 1]! << 24)) >>> 0;
  const got = crc32(raw, 0, n - 4);
  if (want !== got) return err({ kind: "crc", error: `CRC mismatch: frame says ${hex32(want)}, content is ${hex32(got)}` });
  const type = TYPE_NAMES.get(raw[0]!);
  if (!type) return err({ kind: "type", error: `unknown frame type 0x${raw[0]!.toString(16).padStart(2, "0")}` });
  const cbor = decodeCbor(raw.subarray(1, n - 4));
  if (!cbor.ok) return err({ kind: "body", error: `${type}: ${cbor.error}` });
  const parsed = BODY_SCHEMAS[type].safeParse(cbor.value);
  if (!parsed.success) return err({ kind: "body", error: `${type}: ${formatIssues(parsed.error)}` });
  return ok({ type, body: parsed.data } as Frame);
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}
