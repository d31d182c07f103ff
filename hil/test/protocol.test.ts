import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { cobsDecode, cobsEncode } from "../src/cobs.ts";
import { crc32 } from "../src/crc32.ts";
import { decodeFrame, encodeFrame, MAX_FRAME_LENGTH, type Frame } from "../src/frames.ts";
import { FrameReader, type ReaderEvent } from "../src/frame-reader.ts";
import { encodeCbor } from "@esp-fleet/schemas";

const enc = new TextEncoder();
const hello: Frame = {
  type: "hello",
  body: {
    role: "device",
    proto: 1,
    dev: "ESP32_LL_01",
    kind: "sqal",
    site: "LL",
    fw: "1.0.0",
    caps: ["tof", "spectral"],
    boot: 3,
    hb: 1000,
    sid: 7,
  },
};
const publish = (ls: number, n = 40): Frame => ({
  type: "publish",
  body: {
    ls,
    ch: "telemetry",
    p: encodeCbor({ v: 1, dev: "F1", boot: 1, seq: ls, ts: 1_700_000_000_000 + ls, pad: "x".repeat(n) }),
  },
});

function frames(events: ReaderEvent[]): Frame[] {
  return events.flatMap((e) => (e.type === "frame" ? [e.frame] : []));
}
function lines(events: ReaderEvent[]): string[] {
  return events.flatMap((e) => (e.type === "console" ? [e.line] : []));
}
function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
/** Frames as the reader returns them: byte strings come back as Buffers, compare by content. */
function norm(f: unknown): unknown {
  if (f instanceof Uint8Array) return Buffer.from(f).toString("hex");
  if (Array.isArray(f)) return f.map(norm);
  if (f && typeof f === "object") return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, norm(v)]));
  return f;
}

describe("crc32 and cobs", () => {
  it("crc32 matches the standard check value", () => {
    expect(crc32(enc.encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it("cobs encodes the textbook examples", () => {
    const hex = (a: Uint8Array) => Buffer.from(a).toString("hex");
    expect(hex(cobsEncode(Uint8Array.of(0)))).toBe("0101");
    expect(hex(cobsEncode(Uint8Array.of(0, 0)))).toBe("010101");
    expect(hex(cobsEncode(Uint8Array.of(0x11, 0x22, 0, 0x33)))).toBe("03112202" + "33");
    expect(hex(cobsEncode(Uint8Array.of(0x11, 0, 0, 0)))).toBe("0211010101");
    const run = new Uint8Array(254).fill(1);
    expect(cobsEncode(run)[0]).toBe(0xff);
    expect(cobsDecode(cobsEncode(run))).toEqual(run);
  });

  it("cobs round-trips any bytes and never emits 0x00", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), (data) => {
        const e = cobsEncode(data);
        expect(e.includes(0)).toBe(false);
        expect(cobsDecode(e)).toEqual(data);
      }),
    );
  });

  it("cobs rejects a code pointing past the end and an embedded zero", () => {
    expect(cobsDecode(Uint8Array.of(0x05, 1, 2))).toBeUndefined();
    expect(cobsDecode(Uint8Array.of(0x03, 1, 0))).toBeUndefined();
  });
});

describe("frames", () => {
  it("round-trips every frame type", () => {
    const all: Frame[] = [
      hello,
      { type: "hello", body: { role: "host", proto: 1, sid: 1 } },
      publish(5),
      { type: "publish", body: { ls: 6, ch: "cmd_res", cmd: "inspect", p: Uint8Array.of(1, 2, 3) } },
      { type: "command", body: { ls: 0, name: "fault", p: encodeCbor({ id: "c1", action: "clear" }) } },
      { type: "ack", body: { ls: 0xffff_ffff } },
      { type: "heartbeat", body: { up: 123_456, tx: 3, rt: 1, bad: 0 } },
    ];
    for (const f of all) {
      const wire = encodeFrame(f);
      expect(wire[wire.length - 1]).toBe(0);
      expect(wire.subarray(0, -1).includes(0)).toBe(false);
      const back = decodeFrame(wire.subarray(0, -1));
      expect(back.ok && norm(back.value)).toEqual(norm(f));
    }
  });

  it("byte strings go on the wire as CBOR major type 2, not typed-array tags", () => {
    const wire = encodeFrame({ type: "ack", body: { ls: 1 } });
    expect(Buffer.from(wire).toString("hex")).toMatch(/00$/);
    const raw = cobsDecode(encodeFrame(publish(1, 0)).subarray(0, -1))!;
    expect(Buffer.from(raw).includes(Buffer.from("6170", "hex"))).toBe(true); // key "p"
    expect(Buffer.from(raw).includes(Buffer.from("d840", "hex"))).toBe(false); // no tag 64
  });

  it("refuses frames beyond the maximum length", () => {
    expect(() => encodeFrame(publish(1, MAX_FRAME_LENGTH))).toThrow(RangeError);
  });

  it("detects every single-bit flip (CRC), never accepting a corrupted frame", () => {
    const wire = encodeFrame(publish(9)).subarray(0, -1);
    for (let bit = 0; bit < wire.length * 8; bit++) {
      const bad = Uint8Array.from(wire);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const r = decodeFrame(bad);
      expect(r.ok).toBe(false);
    }
  });

  it("property: random corruption never yields a frame different from the one sent", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), (ls, flips) => {
        const wire = encodeFrame(publish(ls, 20)).subarray(0, -1);
        const bad = Uint8Array.from(wire);
        for (const f of flips) bad[f % bad.length]! ^= 1 << (f % 8);
        const r = decodeFrame(bad);
        if (r.ok) expect(norm(r.value)).toEqual(norm(publish(ls, 20)));
      }),
      { numRuns: 300 },
    );
  });

  it("rejects a valid CRC over an unknown type or a bad body as such", () => {
    const ack = decodeFrame(encodeFrame({ type: "ack", body: { ls: 1 } }).subarray(0, -1));
    expect(ack.ok).toBe(true);
    const bogus = new Uint8Array([0x09, 0xa0, 0, 0, 0, 0]);
    const c = crc32(bogus, 0, 2);
    bogus.set([c & 0xff, (c >>> 8) & 0xff, (c >>> 16) & 0xff, c >>> 24], 2);
    const r = decodeFrame(cobsEncode(bogus));
    expect(!r.ok && r.error.kind).toBe("type");
    bogus[0] = 0x04; // ack with an empty map: CRC now wrong → crc
    expect(!decodeFrame(cobsEncode(bogus)).ok).toBe(true);
  });
});

describe("FrameReader over raw bytes", () => {
  const a = encodeFrame(publish(1));
  const b = encodeFrame(publish(2));
  const h = encodeFrame(hello);

  it("decodes a frame split across chunks, byte by byte", () => {
    const r = new FrameReader();
    const out: ReaderEvent[] = [];
    for (const byte of h) out.push(...r.push(Uint8Array.of(byte)));
    expect(frames(out).map(norm)).toEqual([norm(hello)]);
    expect(r.counters.framesOk).toBe(1);
  });

  it("decodes several frames in one chunk", () => {
    const r = new FrameReader();
    const out = r.push(concat(a, b, h));
    expect(frames(out).map(norm)).toEqual([publish(1), publish(2), hello].map(norm));
  });

  it("drops a frame with a flipped bit and resyncs on the next one", () => {
    const r = new FrameReader();
    const bad = Uint8Array.from(a);
    bad[10]! ^= 0x10;
    const out = r.push(concat(bad, b));
    expect(frames(out).map(norm)).toEqual([norm(publish(2))]);
    expect(r.counters.crcErrors + r.counters.malformed).toBe(1);
    expect(r.counters.resyncs).toBe(1);
  });

  it("drops a truncated frame that runs into the next one", () => {
    const r = new FrameReader();
    const out = r.push(concat(a.subarray(0, 20), b, h));
    // the truncated bytes and b share one block: b is lost, h survives
    expect(frames(out).map(norm)).toEqual([norm(hello)]);
    expect(r.counters.resyncs).toBe(1);
  });

  it("surfaces ESP32 boot-ROM text and still decodes frames written straight after it", () => {
    const rom = enc.encode(
      "ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n" +
        "configsip: 0, SPIWP:0xee\r\nmode:DIO, clock div:2\r\nload:0x3fff0030,len:1184\r\nentry 0x400805e4\r\n" +
        "\x1b[0;32mI (29) boot: ESP-IDF v4.4 2nd stage bootloader\x1b[0m\r\nno newline before frame",
    );
    const r = new FrameReader();
    const out = r.push(concat(rom, a, enc.encode("tail text\n"), b));
    expect(lines(out)).toEqual(
      [
        "ets Jun  8 2016 00:22:57",
        "",
        "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
        "configsip: 0, SPIWP:0xee",
        "mode:DIO, clock div:2",
        "load:0x3fff0030,len:1184",
        "entry 0x400805e4",
        "\x1b[0;32mI (29) boot: ESP-IDF v4.4 2nd stage bootloader\x1b[0m",
        "no newline before frame",
        "tail text",
      ].filter((l) => l !== ""),
    );
    expect(frames(out).map(norm)).toEqual([publish(1), publish(2)].map(norm));
    expect(r.counters.resyncs).toBe(0);
  });

  it("treats a COBS code byte 0x0A (newline) after text as the start of a frame", () => {
    // find a frame whose first (code) byte is 0x0A
    let f: Frame | undefined;
    for (let n = 0; n < 300 && !f; n++) {
      const c: Frame = { type: "command", body: { ls: n, name: "status", p: Uint8Array.of(1, 0, 2) } };
      if (encodeFrame(c)[0] === 0x0a) f = c;
    }
    const wire = f ? encodeFrame(f) : Uint8Array.of(0x0a, 0x04, 0xa1, 0x62, 0x6c, 0x73, 0x01, 1, 2, 3, 0);
    const r = new FrameReader();
    const out = [...r.push(enc.encode("hello\n")), ...r.push(wire), ...r.push(concat(enc.encode("x\n"), wire))];
    expect(lines(out)).toEqual(["hello", "x"]);
    if (f) expect(frames(out).map(norm)).toEqual([norm(f), norm(f)]);
  });

  it("counts and drops garbage bursts (with zeros) between frames", () => {
    const r = new FrameReader();
    const garbage = Uint8Array.of(0x00, 0xff, 0x13, 0x00, 0x80, 0x01, 0x02, 0xfe, 0x00);
    const out = r.push(concat(a, garbage, b));
    expect(frames(out).map(norm)).toEqual([publish(1), publish(2)].map(norm));
    expect(r.counters.resyncs).toBe(2);
    expect(r.counters.droppedBytes).toBe(2 + 1 + 4 + 1);
  });

  it("drops an oversize block up to the next delimiter", () => {
    const r = new FrameReader();
    const big = new Uint8Array(10_000).fill(0x01);
    const out = r.push(concat(big, Uint8Array.of(0), a));
    expect(frames(out).map(norm)).toEqual([norm(publish(1))]);
    expect(r.counters.oversize).toBe(1);
  });

  it("cuts a very long console line", () => {
    const r = new FrameReader();
    const out = r.push(enc.encode("y".repeat(1200) + "\n"));
    const got = [...out, ...r.flushConsole()];
    expect(lines(got).join("")).toBe("y".repeat(1200));
  });

  it("property: frames survive any chunking, interleaved with console text and garbage", () => {
    const item = fc.oneof(
      fc.record({ k: fc.constant("frame" as const), ls: fc.nat(10_000), n: fc.nat(300) }),
      fc.record({ k: fc.constant("text" as const), s: fc.stringMatching(/^[ -~]{1,60}$/) }),
      fc.record({ k: fc.constant("garbage" as const), g: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(item, { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1 }),
        (items, cuts) => {
          const parts: Uint8Array[] = [];
          const sent: Frame[] = [];
          const texts: string[] = [];
          for (const it of items) {
            if (it.k === "frame") {
              const f = publish(it.ls, it.n);
              sent.push(f);
              parts.push(encodeFrame(f));
            } else if (it.k === "text") {
              texts.push(it.s);
              parts.push(enc.encode(`${it.s}\r\n`), Uint8Array.of(0));
            } else {
              // garbage ends with a delimiter, as a burst on a real line is followed by the next frame's 0x00
              parts.push(it.g, Uint8Array.of(0));
            }
          }
          const wire = concat(...parts);
          const r = new FrameReader();
          const out: ReaderEvent[] = [];
          let o = 0;
          let c = 0;
          while (o < wire.length) {
            const n = cuts[c++ % cuts.length]!;
            out.push(...r.push(wire.subarray(o, o + n)));
            o += n;
          }
          out.push(...r.flushConsole());
          expect(frames(out).map(norm)).toEqual(sent.map(norm));
          for (const t of texts) expect(lines(out)).toContain(t);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("property: random noise over a stream of frames never yields a frame that was not sent", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 30 }), fc.uint8Array({ maxLength: 60 }), (flips, burst) => {
        const sent = [1, 2, 3, 4].map((ls) => publish(ls, 30));
        const wire = concat(...sent.slice(0, 2).map(encodeFrame), burst, ...sent.slice(2).map(encodeFrame));
        for (const f of flips) wire[f % wire.length]! ^= 1 << (f % 8);
        const r = new FrameReader();
        const got = frames(r.push(wire)).map(norm);
        const valid = sent.map((f) => JSON.stringify(norm(f)));
        for (const g of got) expect(valid).toContain(JSON.stringify(g));
      }),
      { numRuns: 300 },
    );
  });
});
