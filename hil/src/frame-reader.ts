import { Transform, type TransformCallback } from "node:stream";
import { decodeFrame, MAX_ENCODED_LENGTH, type Frame, type FrameError } from "./frames.ts";

/**
 * The receiving half of the serial link: bytes in, frames and console lines out.
 *
 * Bytes accumulate until a 0x00 delimiter; the block is then decoded as a frame (COBS, length, CRC,
 * type, CBOR body). Console text shares the UART: a block that is all printable is a console line, and a
 * line ending in `\n` is surfaced as soon as the next byte shows it is text. Text that runs straight into
 * a frame (no delimiter between them) is split off: a frame's second byte is its type (0x01–0x05, never
 * printable), so the frame starts at the first non-printable byte or the one before it (the COBS code).
 * Anything else is counted and dropped, and the reader resynchronises at the next 0x00. A block that
 * grows past the longest legal frame is dropped up to the next 0x00. Nothing that fails the CRC is ever
 * returned as a frame.
 */
export type ReaderEvent =
  | { type: "frame"; frame: Frame; bytes: number }
  | { type: "console"; line: string }
  | { type: "bad"; error: FrameError; bytes: number };

export interface ReaderCounters {
  /** frames that passed every check */
  framesOk: number;
  /** blocks with a CRC mismatch (line noise) */
  crcErrors: number;
  /** blocks that are not COBS, too short, or of an unknown type */
  malformed: number;
  /** valid CRC but a body that does not decode or validate (a peer bug, not noise) */
  bodyErrors: number;
  /** blocks longer than the longest legal frame */
  oversize: number;
  /** times bytes were dropped and the reader waited for the next delimiter */
  resyncs: number;
  /** bytes dropped (neither frame nor console text) */
  droppedBytes: number;
  consoleLines: number;
}

/** Longest console line surfaced at once; longer text is cut into lines of this size. */
export const MAX_CONSOLE_LINE = 512;

const NL = 0x0a;

/** Console text: printable ASCII, tab, CR, LF, ESC (ANSI colours) and UTF-8 bytes. */
function isText(b: number): boolean {
  return b >= 0x20 ? b !== 0x7f : b === 0x09 || b === 0x0a || b === 0x0d || b === 0x1b;
}

const utf8 = new TextDecoder("utf-8");

export class FrameReader {
  readonly counters: ReaderCounters = {
    framesOk: 0,
    crcErrors: 0,
    malformed: 0,
    bodyErrors: 0,
    oversize: 0,
    resyncs: 0,
    droppedBytes: 0,
    consoleLines: 0,
  };
  #buf = new Uint8Array(MAX_ENCODED_LENGTH + 1);
  #len = 0;
  #text = true;
  #discarding = false;
  #out: ReaderEvent[] = [];

  /** Feed bytes; returns what they completed, in order. */
  push(chunk: Uint8Array): ReaderEvent[] {
    this.#out = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0) {
        this.#endBlock();
        continue;
      }
      if (this.#discarding) {
        this.counters.droppedBytes++;
        continue;
      }
      if (this.#text && this.#len > 0 && this.#buf[this.#len - 1] === NL) {
        if (isText(b)) {
          this.#emitLine(0, this.#len);
          this.#len = 0;
        } else {
          // The `\n` may be the COBS code byte of a frame whose type byte this is.
          this.#emitLine(0, this.#len - 1);
          this.#buf[0] = NL;
          this.#len = 1;
        }
      }
      if (this.#len === this.#buf.length) {
        // Text is cut into lines long before this, so this is an oversize binary block.
        this.counters.oversize++;
        this.counters.resyncs++;
        this.counters.droppedBytes += this.#len + 1;
        this.#out.push({ type: "bad", error: { kind: "length", error: "block exceeds the longest frame" }, bytes: this.#len });
        this.#len = 0;
        this.#text = true;
        this.#discarding = true;
        continue;
      }
      this.#buf[this.#len++] = b;
      if (this.#text && !isText(b)) this.#text = false;
      else if (this.#text && this.#len >= MAX_CONSOLE_LINE && b !== NL) {
        this.#emitLine(0, this.#len);
        this.#len = 0;
      }
    }
    return this.#out;
  }

  /** Surface a pending console line that ends in `\n` (call after the line has been idle a moment). */
  flushConsole(): ReaderEvent[] {
    this.#out = [];
    if (this.#text && this.#len > 0 && this.#buf[this.#len - 1] === NL) {
      this.#emitLine(0, this.#len);
      this.#len = 0;
    }
    return this.#out;
  }

  /** Bytes waiting for a delimiter. */
  get pending(): number {
    return this.#len;
  }

  #endBlock(): void {
    const len = this.#len;
    const wasText = this.#text;
    this.#len = 0;
    this.#text = true;
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    if (len === 0) return; // a leading delimiter, or two in a row
    const block = this.#buf.subarray(0, len);
    if (wasText) {
      this.#emitLine(0, len);
      return;
    }
    const whole = decodeFrame(block);
    if (whole.ok) {
      this.counters.framesOk++;
      this.#out.push({ type: "frame", frame: whole.value, bytes: len + 1 });
      return;
    }
    // Console text running into a frame: try the frame at the first non-text byte or the one before.
    let firstBinary = 0;
    while (firstBinary < len && isText(block[firstBinary]!)) firstBinary++;
    for (const start of [firstBinary - 1, firstBinary]) {
      if (start < 1) continue;
      const tail = decodeFrame(block.subarray(start));
      if (tail.ok) {
        this.#emitLine(0, start);
        this.counters.framesOk++;
        this.#out.push({ type: "frame", frame: tail.value, bytes: len - start + 1 });
        return;
      }
    }
    // Not a frame. Printable text before the binary part (minus a possible COBS code byte) is console.
    const textEnd = Math.max(0, firstBinary - 1);
    if (textEnd > 0) this.#emitLine(0, textEnd);
    const error = whole.error;
    switch (error.kind) {
      case "crc":
        this.counters.crcErrors++;
        break;
      case "body":
        this.counters.bodyErrors++;
        break;
      case "cobs":
      case "length":
      case "type":
        this.counters.malformed++;
        break;
    }
    this.counters.resyncs++;
    this.counters.droppedBytes += len - textEnd + 1;
    this.#out.push({ type: "bad", error, bytes: len - textEnd });
  }

  #emitLine(start: number, end: number): void {
    let e = end;
    while (e > start && (this.#buf[e - 1] === NL || this.#buf[e - 1] === 0x0d)) e--;
    if (e === start) return;
    this.counters.consoleLines++;
    this.#out.push({ type: "console", line: utf8.decode(this.#buf.subarray(start, e)) });
  }
}

/**
 * The reader as a stream: write raw serial bytes, read `ReaderEvent` objects. A console line that ends
 * in `\n` and sees no further byte for `idleFlushMs` is surfaced without waiting.
 */
export class FrameDecoderStream extends Transform {
  readonly reader = new FrameReader();
  #idle: NodeJS.Timeout | undefined;
  readonly #idleFlushMs: number;

  constructor(opts: { idleFlushMs?: number } = {}) {
    super({ readableObjectMode: true });
    this.#idleFlushMs = opts.idleFlushMs ?? 20;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (const ev of this.reader.push(chunk)) this.push(ev);
    if (this.#idle) clearTimeout(this.#idle);
    if (this.reader.pending > 0) {
      this.#idle = setTimeout(() => {
        this.#idle = undefined;
        for (const ev of this.reader.flushConsole()) this.push(ev);
      }, this.#idleFlushMs);
      this.#idle.unref();
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#idle) clearTimeout(this.#idle);
    for (const ev of this.reader.flushConsole()) this.push(ev);
    done();
  }

  override _destroy(error: Error | null, done: (error: Error | null) => void): void {
    if (this.#idle) clearTimeout(this.#idle);
    done(error);
  }
}
