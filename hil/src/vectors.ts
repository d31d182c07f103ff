import { encodeCbor } from "@esp-fleet/schemas";
import { cobsEncode } from "./cobs.ts";
import { crc32 } from "./crc32.ts";
import { encodeFrame, type Frame, type FrameError } from "./frames.ts";

/**
 * The golden frame vectors (hil/vectors/frames.json), shared by the TypeScript tests and the reference
 * firmware's C tests. `body` is the frame body as JSON, byte strings as hex; `payload` is the decoded
 * meaning of a publish/command payload. Regenerate with `npx tsx hil/scripts/generate-vectors.ts`.
 */
export interface FrameVector {
  name: string;
  hex: string;
  type: Frame["type"];
  body: Record<string, unknown>;
  payload?: unknown;
}

export interface BadFrameVector {
  name: string;
  /** the block between delimiters, without the trailing 0x00 */
  hex: string;
  error: FrameError["kind"];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function frameVector(name: string, frame: Frame, payload?: unknown): FrameVector {
  const body = Object.fromEntries(Object.entries(frame.body).map(([k, v]) => [k, v instanceof Uint8Array ? hex(v) : v]));
  return { name, hex: hex(encodeFrame(frame)), type: frame.type, body, ...(payload === undefined ? {} : { payload }) };
}

const status = { v: 1, dev: "ESP32_LL_01", boot: 3, seq: 0, ts: 1_764_547_200_000, state: "online", reason: "power_on" };
const inspect = { id: "c-1", lot: "LL2512001", n: 5 };
const reply = { v: 1, dev: "ESP32_LL_01", boot: 3, seq: 1, ts: 1_764_547_201_500, id: "c-1", ok: true };

export function frameVectors(): FrameVector[] {
  return [
    frameVector("device hello", {
      type: "hello",
      body: {
        role: "device",
        proto: 1,
        dev: "ESP32_LL_01",
        kind: "sqal",
        site: "LL",
        fw: "1.0.0",
        caps: ["tof", "spectral", "cmd:inspect", "cmd:status"],
        boot: 3,
        hb: 2000,
        sid: 305419896,
      },
    }),
    frameVector("host hello", { type: "hello", body: { role: "host", proto: 1, sid: 1 } }),
    frameVector("host hello asking for the device's", { type: "hello", body: { role: "host", proto: 1, sid: 2, ask: true } }),
    frameVector("publish status online", { type: "publish", body: { ls: 0, ch: "status", p: encodeCbor(status) } }, status),
    frameVector(
      "publish log line",
      { type: "publish", body: { ls: 1, ch: "log", p: new TextEncoder().encode("I2C scan: 0x29 0x39") } },
      "I2C scan: 0x29 0x39",
    ),
    frameVector(
      "publish command reply",
      { type: "publish", body: { ls: 300, ch: "cmd_res", cmd: "inspect", p: encodeCbor(reply) } },
      reply,
    ),
    frameVector("command inspect", { type: "command", body: { ls: 7, name: "inspect", p: encodeCbor(inspect) } }, inspect),
    frameVector("ack", { type: "ack", body: { ls: 70000 } }),
    frameVector("ack max", { type: "ack", body: { ls: 4294967295 } }),
    frameVector("heartbeat", { type: "heartbeat", body: { up: 5_000_000_000, tx: 12, rt: 1, bad: 0 } }),
  ];
}

export function badFrameVectors(): BadFrameVector[] {
  const ack = encodeFrame({ type: "ack", body: { ls: 70000 } }).subarray(0, -1);
  const flipped = Uint8Array.from(ack);
  flipped[3]! ^= 0x04;
  const truncated = ack.subarray(0, ack.length - 2);
  const unknownType = Uint8Array.of(0x7f, 0xa0, 0, 0, 0, 0);
  const c = crc32(unknownType, 0, 2);
  unknownType.set([c & 0xff, (c >>> 8) & 0xff, (c >>> 16) & 0xff, c >>> 24], 2);
  const badBody = Uint8Array.of(0x04, 0xa1, 0x62, 0x6c, 0x73, 0x61, 0x78, 0, 0, 0, 0); // ack {ls: "x"}
  const c2 = crc32(badBody, 0, 7);
  badBody.set([c2 & 0xff, (c2 >>> 8) & 0xff, (c2 >>> 16) & 0xff, c2 >>> 24], 7);
  return [
    { name: "bit flip in an ack", hex: hex(flipped), error: "crc" },
    { name: "truncated ack", hex: hex(truncated), error: "cobs" },
    { name: "too short", hex: "04010203", error: "length" },
    { name: "COBS code past the end", hex: "0a0102", error: "cobs" },
    { name: "unknown type with a valid CRC", hex: hex(cobsEncode(unknownType)), error: "type" },
    { name: "ack whose ls is text, valid CRC", hex: hex(cobsEncode(badBody)), error: "body" },
  ];
}
