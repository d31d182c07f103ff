import type { Clock, Timer } from "@esp-fleet/common/clock";
import { encodeFrame, type CommandFrame, type Frame, type Publish } from "./frames.ts";

/**
 * One end of the serial link above the framing: link sequence numbers, acknowledgements, retransmission
 * and duplicate suppression for `publish` (device → host) and `command` (host → device) frames.
 *
 * - Each reliable frame gets the next `ls` (u32, wrapping). At most `window` frames are unacknowledged;
 *   further frames wait in a bounded queue (oldest dropped and counted when it is full).
 * - An unacknowledged frame is sent again after `retryMs × attempt` (capped at 8×); after `maxRetries`
 *   retransmissions it is given up and counted as lost.
 * - The receiver acknowledges every reliable frame it receives, including duplicates (the ack may have
 *   been lost), and delivers each `ls` once: it remembers the last `DEDUP_WINDOW` numbers it delivered.
 * - A `hello` from the peer with a new session id means the peer's numbering restarted: the remembered
 *   numbers are forgotten, and everything still unacknowledged is sent again at once (the new peer
 *   cannot have acknowledged it).
 *
 * Pure apart from the injected clock and `write`.
 */
export interface LinkOptions {
  clock: Clock;
  /** Put bytes on the wire. */
  write: (bytes: Uint8Array) => void;
  /** Ack timeout before the first retransmission, ms. */
  retryMs?: number;
  /** Retransmissions before a frame is given up (Infinity: never). */
  maxRetries?: number;
  /** Unacknowledged frames in flight. */
  window?: number;
  /** Frames waiting for a window slot. */
  queueLimit?: number;
}

export interface LinkCounters {
  /** reliable frames sent for the first time */
  sent: number;
  /** retransmissions */
  retries: number;
  /** reliable frames acknowledged by the peer */
  acked: number;
  /** reliable frames given up after maxRetries */
  lost: number;
  /** frames dropped from a full queue */
  dropped: number;
  /** reliable frames received and delivered */
  received: number;
  /** reliable frames received again (retransmissions of frames already delivered) */
  duplicates: number;
}

export type ReliableFrame = { type: "publish"; body: Omit<Publish, "ls"> } | { type: "command"; body: Omit<CommandFrame, "ls"> };

export const DEDUP_WINDOW = 1024;

interface InFlight {
  ls: number;
  bytes: Uint8Array;
  attempts: number;
  timer: Timer | undefined;
}

export class LinkEndpoint {
  readonly counters: LinkCounters = { sent: 0, retries: 0, acked: 0, lost: 0, dropped: 0, received: 0, duplicates: 0 };
  readonly #clock: Clock;
  readonly #write: (bytes: Uint8Array) => void;
  readonly #retryMs: number;
  readonly #maxRetries: number;
  readonly #window: number;
  readonly #queueLimit: number;
  #nextLs = 0;
  #inFlight = new Map<number, InFlight>();
  #queue: ReliableFrame[] = [];
  #seen = new Set<number>();
  #seenOrder: number[] = [];
  #stopped = false;
  #peerSid: number | undefined;

  constructor(opts: LinkOptions) {
    this.#clock = opts.clock;
    this.#write = opts.write;
    this.#retryMs = opts.retryMs ?? 100;
    this.#maxRetries = opts.maxRetries ?? 20;
    this.#window = opts.window ?? 16;
    this.#queueLimit = opts.queueLimit ?? 1024;
  }

  /** Unacknowledged frames plus queued ones. */
  get backlog(): number {
    return this.#inFlight.size + this.#queue.length;
  }

  /** Send a frame that needs no acknowledgement (hello, heartbeat). */
  sendFrame(frame: Frame): void {
    if (this.#stopped) return;
    this.#write(encodeFrame(frame));
  }

  /** Send a publish or command reliably. Throws RangeError if it cannot fit in a frame. */
  sendReliable(frame: ReliableFrame): void {
    if (this.#stopped) return;
    // Encode once now so an oversize frame fails at the caller, not later in a timer.
    encodeFrame({ type: frame.type, body: { ...frame.body, ls: 0 } } as Frame);
    if (this.#inFlight.size < this.#window) {
      this.#transmit(frame);
      return;
    }
    if (this.#queue.length >= this.#queueLimit) {
      this.#queue.shift();
      this.counters.dropped++;
    }
    this.#queue.push(frame);
  }

  /**
   * Handle a frame from the peer. Returns it when the application should act on it (a new publish or
   * command, a hello, a heartbeat); acks and duplicates are consumed here.
   */
  receive(frame: Frame): Frame | undefined {
    switch (frame.type) {
      case "ack":
        this.#onAck(frame.body.ls);
        return undefined;
      case "publish":
      case "command": {
        const ls = frame.body.ls;
        if (!this.#stopped) this.#write(encodeFrame({ type: "ack", body: { ls } }));
        if (this.#seen.has(ls)) {
          this.counters.duplicates++;
          return undefined;
        }
        this.#remember(ls);
        this.counters.received++;
        return frame;
      }
      case "hello":
        if (frame.body.sid !== this.#peerSid) {
          this.#peerSid = frame.body.sid;
          this.#seen.clear();
          this.#seenOrder = [];
          this.retransmitNow();
        }
        return frame;
      case "heartbeat":
        return frame;
      default: {
        const never: never = frame;
        return never;
      }
    }
  }

  /** Send every unacknowledged frame again now (the peer just (re)appeared). */
  retransmitNow(): void {
    for (const f of this.#inFlight.values()) {
      f.timer?.cancel();
      f.attempts = 0;
      this.#resend(f);
    }
  }

  /** Stop all timers; nothing is written afterwards. */
  stop(): void {
    this.#stopped = true;
    for (const f of this.#inFlight.values()) f.timer?.cancel();
  }

  #transmit(frame: ReliableFrame): void {
    const ls = this.#nextLs;
    this.#nextLs = (this.#nextLs + 1) >>> 0;
    const bytes = encodeFrame({ type: frame.type, body: { ...frame.body, ls } } as Frame);
    const f: InFlight = { ls, bytes, attempts: 0, timer: undefined };
    this.#inFlight.set(ls, f);
    this.counters.sent++;
    this.#write(bytes);
    this.#arm(f);
  }

  #resend(f: InFlight): void {
    if (this.#stopped) return;
    this.counters.retries++;
    this.#write(f.bytes);
    this.#arm(f);
  }

  #arm(f: InFlight): void {
    const delay = this.#retryMs * Math.min(8, f.attempts + 1);
    f.timer = this.#clock.setTimeout(() => {
      f.timer = undefined;
      if (!this.#inFlight.has(f.ls) || this.#stopped) return;
      if (f.attempts >= this.#maxRetries) {
        this.#inFlight.delete(f.ls);
        this.counters.lost++;
        this.#fill();
        return;
      }
      f.attempts++;
      this.#resend(f);
    }, delay);
  }

  #onAck(ls: number): void {
    const f = this.#inFlight.get(ls);
    if (!f) return; // a duplicate ack, or an ack for a frame given up
    f.timer?.cancel();
    this.#inFlight.delete(ls);
    this.counters.acked++;
    this.#fill();
  }

  #fill(): void {
    while (this.#inFlight.size < this.#window && this.#queue.length > 0) this.#transmit(this.#queue.shift()!);
  }

  #remember(ls: number): void {
    this.#seen.add(ls);
    this.#seenOrder.push(ls);
    if (this.#seenOrder.length > DEDUP_WINDOW) this.#seen.delete(this.#seenOrder.shift()!);
  }
}
