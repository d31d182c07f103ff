import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { encodeCbor } from "@esp-fleet/schemas";
import { cobsDecode } from "../src/cobs.ts";
import { decodeFrame, encodeFrame, type Frame } from "../src/frames.ts";
import { cborDiag } from "../src/vector-files.ts";

const dir = fileURLToPath(new URL("../firmware/", import.meta.url));
const hasGcc = ["/usr/bin/gcc", "/usr/local/bin/gcc", "/usr/bin/cc"].some((p) => existsSync(p));
const skip = process.env.CI !== "true" && !hasGcc;
const tool = `${dir}build/frametool`;

function c(...args: string[]): string {
  return execFileSync(tool, args, { encoding: "utf8" }).trim();
}

describe.skipIf(skip)(`reference firmware: portable C link code${skip ? " (skipped: needs gcc and make)" : ""}`, () => {
  beforeAll(() => {
    execFileSync("make", ["-s", "-C", dir, "tool"], { stdio: "pipe" });
  });

  it("passes its host unit tests against the shared vectors (make -C hil/firmware test)", () => {
    const out = execFileSync("make", ["-s", "-C", dir, "test"], { encoding: "utf8" });
    expect(out).toMatch(/\d+ checks, 0 failures/);
  });

  it("frames built by the C code decode in TypeScript", () => {
    const decode = (hex: string): Frame => {
      const wire = Buffer.from(hex, "hex");
      expect(wire[wire.length - 1]).toBe(0);
      const r = decodeFrame(wire.subarray(0, -1));
      if (!r.ok) throw new Error(r.error.error);
      return r.value;
    };
    expect(decode(c("hello", "ESP32_LL_07", "sqal", "LL", "2.0.1", "9", "1500", "4000000000"))).toEqual({
      type: "hello",
      body: {
        role: "device",
        proto: 1,
        dev: "ESP32_LL_07",
        kind: "sqal",
        site: "LL",
        fw: "2.0.1",
        caps: [],
        boot: 9,
        hb: 1500,
        sid: 4000000000,
      },
    });
    const status = encodeCbor({ v: 1, dev: "ESP32_LL_07", boot: 9, seq: 0, ts: 1_764_547_200_000, state: "online" });
    const pub = decode(c("publish", "123456", "status", Buffer.from(status).toString("hex")));
    expect(
      pub.type === "publish" &&
        pub.body.ls === 123456 &&
        pub.body.ch === "status" &&
        Buffer.from(pub.body.p).equals(Buffer.from(status)),
    ).toBe(true);
    const res = decode(c("publish", "5", "cmd_res:inspect", "a0"));
    expect(res.type === "publish" && res.body.ch === "cmd_res" && res.body.cmd === "inspect").toBe(true);
    expect(decode(c("ack", "4294967295"))).toEqual({ type: "ack", body: { ls: 4294967295 } });
    // and the bytes are identical to what TypeScript builds
    expect(c("ack", "70000")).toBe(Buffer.from(encodeFrame({ type: "ack", body: { ls: 70000 } })).toString("hex"));
  });

  it("frames built by TypeScript decode in C, with console text and garbage on the same line", () => {
    const frames: Frame[] = [
      { type: "command", body: { ls: 7, name: "inspect", p: encodeCbor({ id: "c-1", lot: "LL2512001", n: 5 }) } },
      { type: "ack", body: { ls: 3 } },
      { type: "hello", body: { role: "host", proto: 1, sid: 77 } },
      { type: "heartbeat", body: { up: 5_000_000_000 } },
    ];
    const body = (f: Frame) => {
      const raw = cobsDecode(encodeFrame(f).subarray(0, -1))!;
      return `${f.type} ${cborDiag(raw.subarray(1, raw.length - 4))}`;
    };
    const corrupted = Uint8Array.from(encodeFrame(frames[1]!));
    corrupted[2]! ^= 0x01;
    const stream = Buffer.concat([
      Buffer.from("\0ets Jun  8 2016 00:22:57\r\n\0"),
      encodeFrame(frames[0]!),
      encodeFrame(frames[1]!),
      Buffer.from([0x13, 0x80, 0xff, 0x00]),
      corrupted,
      encodeFrame(frames[2]!),
      encodeFrame(frames[3]!),
    ]);
    const out = execFileSync(tool, ["read"], { input: stream, encoding: "utf8" }).trim().split("\n");
    expect(out).toEqual(["text 26", body(frames[0]!), body(frames[1]!), "bad 1", "bad 3", body(frames[2]!), body(frames[3]!)]);
  });
});
