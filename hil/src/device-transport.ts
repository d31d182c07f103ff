import { randomInt } from "node:crypto";
import type { Clock, Timer } from "@esp-fleet/common/clock";
import type { Logger } from "@esp-fleet/common/logger";
import { decodeCbor, type DeviceKind } from "@esp-fleet/schemas";
import type {
  CommandHandler,
  ConnectOptions,
  DeviceAddressInfo,
  DeviceTransport,
  LinkHandler,
  PublishChannel,
  PublishOptions,
} from "@esp-fleet/device-emulator/transport";
import { FrameReader, type ReaderCounters } from "./frame-reader.ts";
import { PROTOCOL_VERSION, type Frame, type LinkChannel } from "./frames.ts";
import { LinkEndpoint, type LinkCounters } from "./link.ts";

/** Where a device transport's bytes go and come from (a serial port, a paced/noisy wrapper, a test pipe). */
export interface ByteLine {
  write(bytes: Uint8Array): void;
  onData(handler: (chunk: Uint8Array) => void): void;
}

export interface SerialDeviceTransportOptions {
  line: ByteLine;
  /** Wall clock for link timers (hello retries, acks, host silence) — never the accelerated one. */
  clock: Clock;
  fw: string;
  caps: string[];
  /** Heartbeat interval announced in hello, wall ms. The link is down after 3 intervals without a host frame. */
  heartbeatMs?: number;
  retryMs?: number;
  log?: Logger;
}

/**
 * The device side of the serial link, behind the emulator's `DeviceTransport` seam: the same firmware
 * core that speaks MQTT speaks the serial protocol.
 *
 * Handshake: `connect()` sends a device `hello` (repeated every second until answered, as bytes written
 * before the far end opens are lost) carrying the will; a host `hello` brings the link up. A host hello
 * with a new session id (a restarted bridge) gets a device hello in reply. Publishes go as reliable
 * `publish` frames (acked, retried, never given up while the transport lives: QoS 1 messages survive a
 * link drop). The host sends heartbeats; three missed intervals with no host frame take the link down.
 * `close()` ends the link session: the next `connect()` (an emulated reboot) starts a new one.
 */
export class SerialDeviceTransport implements DeviceTransport {
  readonly reader = new FrameReader();
  readonly #addr: DeviceAddressInfo;
  readonly #o: SerialDeviceTransportOptions;
  readonly #hbMs: number;
  #link: LinkEndpoint;
  #sid: number;
  #linkHandler: LinkHandler = () => undefined;
  #commandHandler: CommandHandler = () => undefined;
  #state: "closed" | "connecting" | "up" = "closed";
  #will: Uint8Array | undefined;
  #boot = 0;
  #hostSid: number | undefined;
  #helloTimer: Timer | undefined;
  #silenceTimer: Timer | undefined;
  #hbTimer: Timer | undefined;
  #bootAt: number;
  /** Totals over every link session of this transport. */
  readonly linkTotals: LinkCounters = { sent: 0, retries: 0, acked: 0, lost: 0, dropped: 0, received: 0, duplicates: 0 };

  constructor(addr: DeviceAddressInfo, opts: SerialDeviceTransportOptions) {
    this.#addr = addr;
    this.#o = opts;
    this.#hbMs = opts.heartbeatMs ?? 1000;
    this.#bootAt = opts.clock.now();
    this.#sid = randomInt(0, 0xffff_ffff);
    this.#link = this.#newLink();
    opts.line.onData((chunk) => this.#onBytes(chunk));
  }

  get counters(): { reader: ReaderCounters; link: LinkCounters } {
    return { reader: this.reader.counters, link: this.#link.counters };
  }

  onLink(handler: LinkHandler): void {
    this.#linkHandler = handler;
  }

  onCommand(handler: CommandHandler): void {
    this.#commandHandler = handler;
  }

  connect(opts: ConnectOptions): void {
    this.#will = opts.will.payload;
    const env = decodeCbor(opts.will.payload);
    if (env.ok && env.value && typeof env.value === "object" && "boot" in env.value && typeof env.value.boot === "number") {
      this.#boot = env.value.boot;
    }
    if (this.#state === "closed") {
      this.#bootAt = this.#o.clock.now();
      this.#hostSid = undefined;
    }
    this.#state = "connecting";
    this.#sendHello();
    this.#armSilence();
  }

  publish(channel: PublishChannel, payload: Uint8Array | string, _opts: PublishOptions): void {
    if (this.#state === "closed") throw new Error("serial link closed");
    const p = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    const m = /^cmd\/([^/]+)\/res$/.exec(channel);
    const body = m ? { ch: "cmd_res" as LinkChannel, cmd: m[1]!, p } : { ch: channel as LinkChannel, p };
    this.#link.sendReliable({ type: "publish", body });
  }

  async close(_clean: boolean): Promise<void> {
    this.#state = "closed";
    this.#stopTimers();
    this.#accumulate();
    this.#link.stop();
    // A new session (new sid, link numbers from 0) for the next connect — an emulated reboot.
    this.#sid = randomInt(0, 0xffff_ffff);
    this.#link = this.#newLink();
  }

  #newLink(): LinkEndpoint {
    return new LinkEndpoint({
      clock: this.#o.clock,
      write: (b) => this.#o.line.write(b),
      retryMs: this.#o.retryMs ?? 200,
      maxRetries: Infinity,
      window: 8,
      queueLimit: 2000,
    });
  }

  #accumulate(): void {
    for (const k of Object.keys(this.linkTotals) as (keyof LinkCounters)[]) this.linkTotals[k] += this.#link.counters[k];
  }

  #hello(): Frame {
    return {
      type: "hello",
      body: {
        role: "device",
        proto: PROTOCOL_VERSION,
        dev: this.#addr.dev,
        kind: this.#addr.kind as DeviceKind,
        site: this.#addr.site,
        fw: this.#o.fw,
        caps: this.#o.caps,
        boot: this.#boot,
        hb: this.#hbMs,
        sid: this.#sid,
        ...(this.#will ? { will: this.#will } : {}),
      },
    };
  }

  #sendHello(): void {
    this.#helloTimer?.cancel();
    this.#helloTimer = undefined;
    if (this.#state === "closed") return;
    this.#link.sendFrame(this.#hello());
    if (this.#state === "connecting") this.#helloTimer = this.#o.clock.setTimeout(() => this.#sendHello(), 1000);
  }

  #onBytes(chunk: Uint8Array): void {
    if (this.#state === "closed") return;
    for (const ev of this.reader.push(chunk)) {
      if (ev.type !== "frame") continue;
      try {
        this.#onFrame(ev.frame);
      } catch (err) {
        this.#o.log?.warn({ err }, "serial device: frame handler failed");
      }
    }
  }

  #onFrame(frame: Frame): void {
    this.#armSilence();
    const f = this.#link.receive(frame);
    if (!f) return;
    switch (f.type) {
      case "hello": {
        if (f.body.role !== "host") return;
        const newHost = f.body.sid !== this.#hostSid;
        this.#hostSid = f.body.sid;
        // Answer a new host, and any host that asks (it may have missed our hello on a noisy line).
        if (newHost || f.body.ask) this.#link.sendFrame(this.#hello());
        if (this.#state === "connecting") {
          this.#state = "up";
          this.#helloTimer?.cancel();
          this.#helloTimer = undefined;
          this.#armHeartbeat();
          this.#linkHandler({ up: true, sessionPresent: false });
        }
        return;
      }
      case "command":
        if (this.#state === "up") this.#commandHandler(f.body.name, f.body.p);
        return;
      case "heartbeat":
      case "publish":
      case "ack":
        return;
      default: {
        const never: never = f;
        return never;
      }
    }
  }

  #armHeartbeat(): void {
    this.#hbTimer?.cancel();
    this.#hbTimer = this.#o.clock.setTimeout(() => {
      if (this.#state !== "up") return;
      const c = this.#link.counters;
      this.#link.sendFrame({
        type: "heartbeat",
        body: {
          up: this.#o.clock.now() - this.#bootAt,
          tx: (this.linkTotals.sent + c.sent) >>> 0,
          rt: (this.linkTotals.retries + c.retries) >>> 0,
          bad: (this.reader.counters.crcErrors + this.reader.counters.malformed) >>> 0,
        },
      });
      this.#armHeartbeat();
    }, this.#hbMs);
  }

  #armSilence(): void {
    this.#silenceTimer?.cancel();
    this.#silenceTimer = this.#o.clock.setTimeout(() => {
      if (this.#state !== "up") return;
      this.#state = "connecting";
      this.#hbTimer?.cancel();
      this.#linkHandler({ up: false, reason: "timeout: host silent" });
    }, this.#hbMs * 3);
  }

  #stopTimers(): void {
    this.#helloTimer?.cancel();
    this.#silenceTimer?.cancel();
    this.#hbTimer?.cancel();
    this.#helloTimer = this.#silenceTimer = this.#hbTimer = undefined;
  }
}
