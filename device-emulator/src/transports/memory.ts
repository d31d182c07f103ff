import type {
  CommandHandler,
  ConnectOptions,
  DeviceTransport,
  LinkHandler,
  PublishChannel,
  PublishOptions,
} from "../transport.ts";

export interface RecordedPublish {
  channel: PublishChannel;
  payload: Uint8Array | string;
  qos: 0 | 1;
  retain: boolean;
}

/**
 * An in-memory transport for tests and for driving a device by hand: it records every publish and
 * connect, and the test decides when the link comes up, drops, or a command arrives. With
 * `mode: "accept"` every `connect()` succeeds synchronously; with `"refuse"` every attempt fails;
 * with `"manual"` the test calls `accept()` / `refuse()`.
 */
export class MemoryTransport implements DeviceTransport {
  mode: "accept" | "refuse" | "manual";
  readonly published: RecordedPublish[] = [];
  readonly connects: ConnectOptions[] = [];
  readonly closes: boolean[] = [];
  up = false;
  pending = false;
  #link: LinkHandler | undefined;
  #command: CommandHandler | undefined;

  constructor(mode: "accept" | "refuse" | "manual" = "accept") {
    this.mode = mode;
  }

  connect(opts: ConnectOptions): void {
    this.connects.push(opts);
    this.pending = true;
    if (this.mode === "accept") this.accept();
    else if (this.mode === "refuse") this.refuse("connection refused: server unavailable");
  }

  accept(sessionPresent = false): void {
    if (!this.pending) throw new Error("no connection attempt pending");
    this.pending = false;
    this.up = true;
    this.#link?.({ up: true, sessionPresent });
  }

  refuse(reason = "connection refused"): void {
    if (!this.pending) throw new Error("no connection attempt pending");
    this.pending = false;
    this.#link?.({ up: false, reason });
  }

  /** The established link drops (broker gone, Wi-Fi lost). */
  drop(reason = "closed"): void {
    if (!this.up) return;
    this.up = false;
    this.#link?.({ up: false, reason });
  }

  /** Deliver a command as the broker would. */
  command(name: string, payload: Uint8Array): void {
    this.#command?.(name, payload);
  }

  publish(channel: PublishChannel, payload: Uint8Array | string, opts: PublishOptions): void {
    if (!this.up) throw new Error(`publish on ${channel} while the link is down`);
    this.published.push({ channel, payload, qos: opts.qos, retain: opts.retain });
  }

  onCommand(handler: CommandHandler): void {
    this.#command = handler;
  }

  onLink(handler: LinkHandler): void {
    this.#link = handler;
  }

  /** What `close()` reports discarded unacknowledged: nothing, since this transport acknowledges at once;
   * a test sets it to stand for a peer that never acknowledged. */
  unackedAtClose = 0;

  async close(clean: boolean): Promise<number> {
    this.closes.push(clean);
    this.up = false;
    this.pending = false;
    return this.unackedAtClose;
  }

  /** Take (and forget) what was published so far. */
  take(): RecordedPublish[] {
    return this.published.splice(0, this.published.length);
  }
}
