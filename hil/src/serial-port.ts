import { SerialPort } from "serialport";
import type { Clock, Timer } from "@esp-fleet/common/clock";
import { UnavailableError } from "@esp-fleet/common/errors";

/** Open a serial port (8N1). socat ptys ignore the rate, real UARTs do not. */
export async function openSerialPort(path: string, baudRate: number): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate, autoOpen: false });
  await new Promise<void>((resolve, reject) =>
    port.open((e) =>
      e ? reject(new UnavailableError(`cannot open serial port ${path}: ${e.message}`, { path }, { cause: e })) : resolve(),
    ),
  );
  return port;
}

export async function closeSerialPort(port: SerialPort): Promise<void> {
  if (!port.isOpen) return;
  await new Promise<void>((resolve) => port.close(() => resolve()));
}

/**
 * Writes at a UART's line rate (10 bits per byte for 8N1) instead of as fast as the pty takes them:
 * a token bucket refilled every millisecond. Without it a socat pty moves ~4 MB/s whatever the baud.
 */
export class PacedWriter {
  readonly #sink: (bytes: Uint8Array) => void;
  readonly #clock: Clock;
  readonly #bytesPerMs: number;
  #queue: Uint8Array[] = [];
  #done: ((() => void) | undefined)[] = [];
  #queued = 0;
  #timer: Timer | undefined;
  #last = 0;
  #credit = 0;

  constructor(sink: (bytes: Uint8Array) => void, baud: number, clock: Clock) {
    this.#sink = sink;
    this.#clock = clock;
    this.#bytesPerMs = baud / 10 / 1000;
  }

  get queued(): number {
    return this.#queued;
  }

  /** Queue bytes; `onSent` runs when their last byte has been handed to the port. */
  write(bytes: Uint8Array, onSent?: () => void): void {
    this.#queue.push(bytes);
    this.#done.push(onSent);
    this.#queued += bytes.length;
    if (!this.#timer) this.#pump();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#queue = [];
    this.#done = [];
    this.#queued = 0;
  }

  #pump(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    if (this.#queue.length === 0) return;
    // Credit accrues while idle only up to one tick's worth (no bursts after a quiet spell).
    this.#credit = Math.min(this.#credit + (now - this.#last) * this.#bytesPerMs, Math.max(1, this.#bytesPerMs * 2));
    if (this.#last === 0) this.#credit = Math.max(1, this.#bytesPerMs);
    this.#last = now;
    let n = Math.floor(this.#credit);
    while (n > 0 && this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const take = Math.min(n, head.length);
      this.#sink(head.subarray(0, take));
      if (take === head.length) {
        this.#queue.shift();
        this.#done.shift()?.();
      } else this.#queue[0] = head.subarray(take);
      n -= take;
      this.#queued -= take;
      this.#credit -= take;
    }
    if (this.#queue.length > 0) this.#timer = this.#clock.setTimeout(() => this.#pump(), 1);
    else this.#last = 0;
  }
}
