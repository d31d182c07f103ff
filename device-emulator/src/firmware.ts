import { hashString, type Rng } from "@esp-fleet/common/random";
import {
  CommandSchemas,
  decodeCbor,
  encodeCbor,
  formatIssues,
  SCHEMA_VERSION,
  type Command,
  type CommandName,
  type DeviceKind,
  type FaultId,
  type InspectionProfile,
} from "@esp-fleet/schemas";
import type { CborChunk } from "@esp-fleet/schemas/cbor-writer";
import { SeededRng } from "./rng.ts";
import { encodeFridgeTelemetry, fridgeTelemetryHead } from "./wire.ts";
import { AlarmDebouncer, ALARM_FIELDS } from "./models/alarms.ts";
import { FridgeModel, type FridgeValues } from "./models/fridge.ts";
import { FeedingLot, lotCode, lotNumber, momentOf, nextFeedingAt } from "./models/feeding.ts";
import { drawTier, measureSample } from "./models/sqal.ts";
import {
  FEEDING_PROFILE,
  FIRMWARE_VERSION,
  FRIDGE_PROFILE,
  HARDWARE,
  MAC_OUI,
  SQAL_PROFILE,
  type FeedingProfile,
  type FridgeField,
  type FridgeProfile,
  type SqalProfile,
} from "./profiles.ts";
import type { Scheduler, TimerHandle, TimerTarget } from "./scheduler.ts";
import type { DeviceState, DeviceStateStore } from "./state-store.ts";
import type { DeviceTransport, LinkEvent, PublishChannel } from "./transport.ts";

/**
 * Firmware of one emulated ESP32, written the way the C firmware is: a state machine driven by timers,
 * link events and commands, doing I/O only through an injected `DeviceTransport`, time only through the
 * shared `Scheduler`'s clock, randomness only from seeded generators and persistence only through a
 * `DeviceStateStore`. Same seed + same clock + same inputs ⇒ the same messages, byte for byte.
 *
 * Life cycle: boot (I2C scan; a failed sensor is an `error` state, not a crash) → Wi-Fi join → connect
 * (MQTT will = `status: offline`) → online (retained birth `status`, retained `meta`, `boot` event,
 * FIFO flush) → on link loss: reconnect with exponential backoff + jitter, readings go to a bounded
 * drop-oldest FIFO → flush in order after the reconnect. Heartbeat `status` every `heartbeatMs` (the first
 * at a random point of the first period after boot). A
 * watchdog reboots a device that stayed offline longer than `watchdogMs`. Clean stop publishes
 * `status: offline` and disconnects cleanly.
 *
 * Time: `intervalMs`, `heartbeatMs`, backoff and the other durations are wall-clock milliseconds; the
 * scheduler's clock runs `accel` times faster than the wall clock (simulated time), so each is scaled
 * by `accel` when scheduled. Feeding stations feed at simulated 06:00 and 18:00 UTC.
 */

export interface DeviceSpec {
  /** Device id = MQTT client id and username, e.g. `ESP32_LL_01`. */
  dev: string;
  kind: DeviceKind;
  site: string;
  /** 1-based index among devices of this kind at this site (lot numbering). Default 1. */
  ordinal?: number;
  /** Devices of this kind at this site in the fleet (lot numbering). Default 1. */
  siteCount?: number;
}

export interface FirmwareOptions {
  /** Wall ms between readings (sqal, fridge). */
  intervalMs: number;
  /** Wall ms between heartbeat `status` messages. */
  heartbeatMs: number;
  /** Simulated time runs this many times faster than the wall clock (must match the scheduler's clock). */
  accel: number;
  /** Fridge: chance per reading that a random fault starts (when none is active). */
  faultProb: number;
  /** Offline FIFO capacity, messages (drop-oldest beyond). */
  fifoSize: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  backoffFactor: number;
  /** 0..1: each delay is multiplied by U(1 − jitter, 1). */
  jitter: number;
  /** Wi-Fi association time, wall ms, uniform in the range. */
  wifiJoinMs: readonly [number, number];
  /** Extra wall ms before the first Wi-Fi join (staggers a fleet's start). */
  startDelayMs: number;
  /** Reboot after this many wall ms without a link (0 = off). */
  watchdogMs: number;
  keepaliveS: number;
  /** Chance per sensor per boot that the I2C scan does not find it. */
  sensorFailProb: number;
  /** Chance per reading of a transient I2C error (retried, counted). */
  i2cErrorProb: number;
  /** Stop producing readings after this many (0 = unlimited). */
  cycles: number;
  /** Wall ms between samples of a lot inspection. */
  inspectPaceMs: number;
  /** Wall ms a reboot takes. */
  rebootDelayMs: number;
}

export const DEFAULT_FIRMWARE_OPTIONS: Readonly<FirmwareOptions> = Object.freeze({
  intervalMs: 1000,
  heartbeatMs: 30_000,
  accel: 1,
  faultProb: 0.1,
  fifoSize: 500,
  backoffMinMs: 500,
  backoffMaxMs: 30_000,
  backoffFactor: 2,
  jitter: 0.5,
  wifiJoinMs: [50, 300] as const,
  startDelayMs: 0,
  watchdogMs: 600_000,
  keepaliveS: 30,
  sensorFailProb: 0,
  i2cErrorProb: 0.0005,
  cycles: 0,
  inspectPaceMs: 200,
  rebootDelayMs: 500,
});

export interface DeviceProfiles {
  fridge: FridgeProfile;
  sqal: SqalProfile;
  feeding: FeedingProfile;
}

export const DEFAULT_PROFILES: DeviceProfiles = { fridge: FRIDGE_PROFILE, sqal: SQAL_PROFILE, feeding: FEEDING_PROFILE };

export interface DeviceDeps {
  scheduler: Scheduler;
  transport: DeviceTransport;
  store: DeviceStateStore;
  /** Fleet seed; each device derives its generators from `${seed}:${dev}`. */
  seed: number | string;
  options?: Partial<FirmwareOptions>;
  profiles?: Partial<DeviceProfiles>;
}

export type DeviceState_ = "off" | "booting" | "connecting" | "online" | "backoff" | "rebooting" | "stopped";

export interface DeviceCounters {
  sent: number;
  buffered: number;
  dropped: number;
  reconnects: number;
  /** QoS 1 messages the transport still held unacknowledged when the session was closed (stop, reboot,
   * power cut): lost with the RAM, as on a real board. Never counted as delivered. */
  unacked: number;
  i2c_err: number;
  readings: number;
  publishErrors: number;
  commands: number;
  badCommands: number;
  errors: number;
}

// Timer slots.
const T_CONNECT = 0;
const T_SAMPLE = 1;
const T_HEARTBEAT = 2;
const T_INSPECT = 3;
const T_REBOOT = 4;
const T_BOOT = 5;
const SLOTS = 6;
/** First size of the offline FIFO ring (it doubles up to `fifoSize`). */
const FIFO_INITIAL = 8;

const QOS1 = { qos: 1, retain: false } as const;
const QOS1_RETAIN = { qos: 1, retain: true } as const;
const QOS0 = { qos: 0, retain: false } as const;

type BootReason = "power_on" | "command" | "watchdog";

interface Inspection {
  lot: string;
  n: number;
  idx: number;
  profile: InspectionProfile;
}

export class EmulatedDevice implements TimerTarget {
  readonly spec: Required<DeviceSpec>;
  readonly mac: string;
  state: DeviceState_ = "off";
  boot = 0;
  /** True once the cycles budget is spent (no more readings). */
  done = false;
  readonly counters: DeviceCounters = {
    sent: 0,
    buffered: 0,
    dropped: 0,
    reconnects: 0,
    unacked: 0,
    i2c_err: 0,
    readings: 0,
    publishErrors: 0,
    commands: 0,
    badCommands: 0,
    errors: 0,
  };
  lastError: unknown;

  readonly #sched: Scheduler;
  readonly #transport: DeviceTransport;
  readonly #store: DeviceStateStore;
  readonly #opts: FirmwareOptions;
  readonly #profiles: DeviceProfiles;
  /** Readings (sensor physics, faults, lots). */
  readonly #rng: Rng;
  /** Hardware and network randomness (sensor failures, Wi-Fi timing, backoff jitter, RSSI). */
  readonly #hw: Rng;
  /** One reusable scheduler handle per timer slot, made on first use: re-arming allocates nothing. */
  readonly #timers: (TimerHandle | undefined)[] = new Array<TimerHandle | undefined>(SLOTS);
  #intervalMs: number;
  #faultProb: number;

  // per-boot
  #seqTelemetry = 0;
  #seqStatus = 0;
  #seqMeta = 0;
  #seqEvent = 0;
  #seqRes = 0;
  #bootAt = 0;
  #bootReason: BootReason = "power_on";
  #onlineThisBoot = false;
  #hadLink = false;
  #offlineSince = -1;
  #attempt = 0;
  #sensorsOk: boolean[] = [];
  #lastSampleAt = -1;
  #rssiBase = -60;
  #rssi = -60;
  #stored: DeviceState = { boot: 0, lots: 0 };
  #droppedThisOutage = 0;

  // offline FIFO (ring buffer, allocated on first use)
  #fifoCh: PublishChannel[] | undefined;
  #fifoPayload: Uint8Array[] | undefined;
  #fifoHead = 0;
  #fifoLen = 0;

  // models
  #fridge: FridgeModel | undefined;
  #alarms: AlarmDebouncer | undefined;
  /** The CBOR head of this boot's fridge readings (wire.ts), encoded at the first reading. */
  #fridgeHead: CborChunk | undefined;
  #lot: FeedingLot | undefined;
  #inspection: Inspection | undefined;
  #stopping: Promise<void> | undefined;

  constructor(spec: DeviceSpec, deps: DeviceDeps) {
    this.spec = { ordinal: 1, siteCount: 1, ...spec };
    this.#sched = deps.scheduler;
    this.#transport = deps.transport;
    this.#store = deps.store;
    this.#opts = { ...DEFAULT_FIRMWARE_OPTIONS, ...deps.options };
    this.#profiles = { ...DEFAULT_PROFILES, ...deps.profiles };
    this.#intervalMs = this.#opts.intervalMs;
    this.#faultProb = this.#opts.faultProb;
    this.#rng = new SeededRng(`${deps.seed}:${spec.dev}`);
    this.#hw = new SeededRng(`${deps.seed}:${spec.dev}:hw`);
    const h = hashString(spec.dev);
    const hex = (n: number) => (n & 0xff).toString(16).toUpperCase().padStart(2, "0");
    this.mac = `${MAC_OUI}:${hex(h >>> 16)}:${hex(h >>> 8)}:${hex(h)}`;
    // Plain arrows in argument position: class-field arrows get a dictionary-mode `name` property each
    // under tsx's keep-names transform (~256 B per device per handler).
    this.#transport.onLink((e) => this.#onLink(e));
    this.#transport.onCommand((name, payload) => this.#onCommand(name, payload));
  }

  get dev(): string {
    return this.spec.dev;
  }

  get online(): boolean {
    return this.state === "online";
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Active fridge fault (simulation ground truth), if any. */
  get fault(): FaultId | null {
    return this.#fridge?.fault ?? null;
  }

  /** Power on. */
  start(): void {
    if (this.state !== "off") return;
    this.#boot("power_on", this.#opts.startDelayMs);
  }

  /** Clean shutdown: `status: offline` (reason `shutdown`), then a clean disconnect (the will is discarded). */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const wasOnline = this.state === "online";
    if (wasOnline) this.#publishStatus("offline", "shutdown");
    this.#cancelAll();
    this.state = "stopped";
    this.#stopping = this.#close(true).catch((e: unknown) => {
      this.counters.errors++;
      this.lastError = e;
    });
    return this.#stopping;
  }

  /** Power cut: the link drops without a DISCONNECT (the broker publishes the will). */
  kill(): Promise<void> {
    this.#cancelAll();
    this.state = "stopped";
    this.#stopping ??= this.#close(false).catch(() => undefined);
    return this.#stopping;
  }

  // ------------------------------------------------------------------------------------- life cycle

  #sim(wallMs: number): number {
    return wallMs * this.#opts.accel;
  }

  /** Device clock, integer ms (ts fields are uints). */
  #now(): number {
    return Math.floor(this.#sched.clock.now());
  }

  #set(slot: number, at: number): void {
    this.#sched.set((this.#timers[slot] ??= this.#sched.timer(this, slot)), at);
  }

  #cancel(slot: number): void {
    this.#sched.cancel(this.#timers[slot]);
  }

  #cancelAll(): void {
    for (let i = 0; i < SLOTS; i++) this.#cancel(i);
  }

  #boot(reason: BootReason, extraDelayMs: number): void {
    const now = this.#now();
    this.#stored = this.#store.load(this.spec.dev);
    this.#stored.boot += 1;
    this.#store.save(this.spec.dev, this.#stored);
    this.boot = this.#stored.boot;
    this.#fridgeHead = undefined;
    this.#bootReason = reason;
    this.#bootAt = now;
    this.#seqTelemetry = this.#seqStatus = this.#seqMeta = this.#seqEvent = this.#seqRes = 0;
    this.#onlineThisBoot = false;
    this.#hadLink = false;
    this.#offlineSince = now;
    this.#attempt = 0;
    this.#inspection = undefined;
    this.#alarms?.reset();
    // RAM is lost on reboot: the FIFO's content is dropped (and counted).
    this.counters.dropped += this.#fifoLen;
    this.#fifoHead = this.#fifoLen = 0;
    this.counters.buffered = 0;
    this.#droppedThisOutage = 0;
    // I2C scan.
    const sensors = HARDWARE[this.spec.kind].sensors;
    this.#sensorsOk = sensors.map(() => !(this.#opts.sensorFailProb > 0 && this.#hw.next() < this.#opts.sensorFailProb));
    this.#rssiBase = this.#hw.int(-78, -45);
    this.#rssi = this.#rssiBase;
    if (this.spec.kind === "fridge") this.#fridge ??= new FridgeModel(this.#profiles.fridge, this.#rng);
    this.state = "booting";
    const wifi = this.#hw.uniform(this.#opts.wifiJoinMs[0], this.#opts.wifiJoinMs[1]);
    this.#set(T_CONNECT, now + this.#sim(extraDelayMs + wifi));
    // The first heartbeat at a random point of the period (then one per period): a fleet that boots together
    // (a site's power coming back, or N emulated devices started at once) would otherwise send its heartbeats
    // in one wave per period, every device's retained status and registry update in the same seconds.
    this.#set(T_HEARTBEAT, now + this.#sim(extraDelayMs + (0.05 + 0.95 * this.#hw.next()) * this.#opts.heartbeatMs));
    this.#lastSampleAt = -1;
    if (!this.done) {
      if (this.spec.kind === "gavage") {
        this.#set(T_SAMPLE, nextFeedingAt(this.#profiles.feeding, now));
      } else {
        // Spread a fleet's readings over the interval (deterministic phase per device).
        this.#set(T_SAMPLE, now + Math.round(this.#sim(extraDelayMs + this.#hw.next() * this.#intervalMs)));
      }
    }
  }

  onTimer(slot: number, at: number): void {
    try {
      switch (slot) {
        case T_CONNECT:
          this.#connect();
          break;
        case T_SAMPLE:
          this.#sample(at);
          break;
        case T_HEARTBEAT:
          this.#set(T_HEARTBEAT, at + this.#sim(this.#opts.heartbeatMs));
          if (this.state === "online") this.#publishStatus(this.#statusState(), "heartbeat");
          break;
        case T_INSPECT:
          this.#inspectStep(at);
          break;
        case T_REBOOT:
          this.#shutdownForReboot("command");
          break;
        case T_BOOT:
          this.#boot(this.#bootReason, 0);
          break;
        default:
          break;
      }
    } catch (e) {
      this.counters.errors++;
      this.lastError = e;
    }
  }

  #connect(): void {
    if (this.state === "stopped" || this.state === "rebooting") return;
    this.state = "connecting";
    // The will reserves its own status seq now (it is published later, by the broker, if at all).
    const will = encodeCbor({
      v: SCHEMA_VERSION,
      dev: this.spec.dev,
      boot: this.boot,
      seq: this.#seqStatus++,
      ts: this.#now(),
      state: "offline",
      reason: "link lost",
    });
    this.#transport.connect({
      will: { channel: "status", payload: will, qos: 1, retain: true },
      keepaliveS: this.#opts.keepaliveS,
    });
  }

  #onLink(e: LinkEvent): void {
    try {
      if (e.up) this.#linkUp();
      else this.#linkDown();
    } catch (err) {
      this.counters.errors++;
      this.lastError = err;
    }
  }

  #linkUp(): void {
    if (this.state !== "connecting") return;
    this.state = "online";
    this.#attempt = 0;
    this.#offlineSince = -1;
    if (this.#hadLink) this.counters.reconnects++;
    this.#hadLink = true;
    const first = !this.#onlineThisBoot;
    this.#onlineThisBoot = true;
    this.#publishStatus(this.#statusState(), first ? `boot: ${this.#bootReason}` : "reconnect");
    this.#publishMeta();
    if (first) {
      this.#send(
        "log",
        `I (${this.#now() - this.#bootAt}) app: fw ${FIRMWARE_VERSION} boot=${this.boot} reset=${this.#bootReason}\n`,
        QOS0,
        false,
      );
      this.#event("boot", "info", `boot ${this.boot}: ${this.#bootReason}`, { reason: this.#bootReason, boot: this.boot });
      const sensors = HARDWARE[this.spec.kind].sensors;
      for (let i = 0; i < sensors.length; i++) {
        const s = sensors[i];
        if (s && !this.#sensorsOk[i]) {
          this.#event("sensor_error", "critical", `${s.name} not found at 0x${s.addr.toString(16)}`, {
            sensor: s.name,
            addr: s.addr,
          });
        }
      }
    }
    // Flush the offline FIFO in order.
    while (this.#fifoLen > 0 && this.state === "online") {
      const ring = this.#fifoCh as PublishChannel[];
      const ch = ring[this.#fifoHead] as PublishChannel;
      const payload = (this.#fifoPayload as Uint8Array[])[this.#fifoHead] as Uint8Array;
      (this.#fifoPayload as (Uint8Array | undefined)[])[this.#fifoHead] = undefined;
      this.#fifoHead = (this.#fifoHead + 1) % ring.length;
      this.#fifoLen--;
      this.counters.buffered = this.#fifoLen;
      this.#handOver(ch, payload, ch === "telemetry" || ch === "event" || ch.startsWith("cmd/") ? QOS1 : QOS0);
    }
    if (this.#droppedThisOutage > 0 && this.state === "online") {
      const dropped = this.#droppedThisOutage;
      this.#droppedThisOutage = 0;
      this.#event("buffer_overflow", "warning", `offline FIFO full: ${dropped} oldest messages dropped`, { dropped });
    }
  }

  #linkDown(): void {
    if (this.state !== "online" && this.state !== "connecting") return;
    const now = this.#now();
    if (this.state === "online") this.#offlineSince = now;
    this.state = "backoff";
    if (this.#opts.watchdogMs > 0 && this.#offlineSince >= 0 && now - this.#offlineSince >= this.#sim(this.#opts.watchdogMs)) {
      this.#rebootNow("watchdog", false);
      return;
    }
    this.#attempt++;
    const o = this.#opts;
    const base = Math.min(o.backoffMaxMs, o.backoffMinMs * o.backoffFactor ** (this.#attempt - 1));
    const delay = base * (1 - o.jitter * this.#hw.next());
    this.#set(T_CONNECT, now + this.#sim(delay));
  }

  #shutdownForReboot(reason: BootReason): void {
    if (this.state === "online") this.#publishStatus("offline", `reboot: ${reason}`);
    this.#rebootNow(reason, true);
  }

  /** Close the session; count what it discarded unacknowledged (transport.ts, contract 5). */
  async #close(clean: boolean): Promise<void> {
    const unacked = await this.#transport.close(clean);
    if (typeof unacked === "number") this.counters.unacked += unacked;
  }

  #rebootNow(reason: BootReason, clean: boolean): void {
    this.#cancelAll();
    this.state = "rebooting";
    this.#bootReason = reason;
    this.#close(clean).catch((e: unknown) => this.#onPublishError(e));
    this.#set(T_BOOT, this.#now() + this.#sim(this.#opts.rebootDelayMs));
  }

  // ------------------------------------------------------------------------------------- publishing

  #send(
    channel: PublishChannel,
    payload: Uint8Array | string,
    opts: typeof QOS1 | typeof QOS0 | typeof QOS1_RETAIN,
    bufferable: boolean,
  ): void {
    if (this.state === "online") {
      this.#handOver(channel, payload, opts);
    } else if (bufferable && typeof payload !== "string") {
      this.#enqueue(channel, payload);
    }
  }

  #handOver(channel: PublishChannel, payload: Uint8Array | string, opts: typeof QOS1 | typeof QOS0 | typeof QOS1_RETAIN): void {
    this.counters.sent++;
    const r = this.#transport.publish(channel, payload, opts);
    if (r) r.then(undefined, (e: unknown) => this.#onPublishError(e));
  }

  #onPublishError(e: unknown): void {
    this.counters.publishErrors++;
    this.lastError = e;
  }

  #enqueue(channel: PublishChannel, payload: Uint8Array): void {
    const cap = this.#opts.fifoSize;
    if (cap <= 0) {
      this.counters.dropped++;
      this.#droppedThisOutage++;
      return;
    }
    if (!this.#fifoCh || !this.#fifoPayload) {
      // Most outages are short: start small and grow by doubling up to `fifoSize` (memory per device).
      this.#fifoCh = new Array<PublishChannel>(Math.min(cap, FIFO_INITIAL));
      this.#fifoPayload = new Array<Uint8Array>(this.#fifoCh.length);
    }
    let ring = this.#fifoCh.length;
    if (this.#fifoLen === ring && ring < cap) {
      // Grow: copy in order (oldest first) into rings twice as large.
      const size = Math.min(cap, ring * 2);
      const ch = new Array<PublishChannel>(size);
      const pl = new Array<Uint8Array>(size);
      for (let i = 0; i < this.#fifoLen; i++) {
        const j = (this.#fifoHead + i) % ring;
        ch[i] = this.#fifoCh[j] as PublishChannel;
        pl[i] = this.#fifoPayload[j] as Uint8Array;
      }
      this.#fifoCh = ch;
      this.#fifoPayload = pl;
      this.#fifoHead = 0;
      ring = size;
    }
    if (this.#fifoLen === cap) {
      // Drop the oldest.
      this.#fifoPayload[this.#fifoHead] = undefined as unknown as Uint8Array;
      this.#fifoHead = (this.#fifoHead + 1) % ring;
      this.#fifoLen--;
      this.counters.dropped++;
      this.#droppedThisOutage++;
    }
    const tail = (this.#fifoHead + this.#fifoLen) % ring;
    this.#fifoCh[tail] = channel;
    this.#fifoPayload[tail] = payload;
    this.#fifoLen++;
    this.counters.buffered = this.#fifoLen;
  }

  #statusState(): "online" | "error" {
    return this.#sensorsOk.every(Boolean) ? "online" : "error";
  }

  #statusFigures(now: number) {
    this.#rssi = Math.max(-100, Math.min(-30, this.#rssiBase + this.#hw.int(-3, 3)));
    return {
      uptime: Math.floor((now - this.#bootAt) / 1000),
      heap: 182_000 - this.#fifoLen * 180 - this.#hw.int(0, 4000),
      rssi: this.#rssi,
      cnt: {
        sent: this.counters.sent,
        buffered: this.#fifoLen,
        dropped: this.counters.dropped,
        reconnects: this.counters.reconnects,
        i2c_err: this.counters.i2c_err,
      },
    };
  }

  #publishStatus(state: "online" | "offline" | "error", reason: string): void {
    const now = this.#now();
    const msg = {
      v: SCHEMA_VERSION,
      dev: this.spec.dev,
      boot: this.boot,
      seq: this.#seqStatus++,
      ts: now,
      state,
      reason,
      ...(state === "offline" ? {} : this.#statusFigures(now)),
    };
    this.#send("status", encodeCbor(msg), QOS1_RETAIN, false);
  }

  #config(): Record<string, number> {
    return {
      interval_ms: this.#intervalMs,
      fault_prob: this.#faultProb,
      accel: this.#opts.accel,
      heartbeat_ms: this.#opts.heartbeatMs,
      fifo: this.#opts.fifoSize,
    };
  }

  #publishMeta(): void {
    const sensors = HARDWARE[this.spec.kind].sensors.map((s, i) =>
      this.#sensorsOk[i]
        ? { name: s.name, addr: s.addr, ok: true }
        : { name: s.name, addr: s.addr, ok: false, err: "no ACK at I2C scan" },
    );
    const msg = {
      v: SCHEMA_VERSION,
      dev: this.spec.dev,
      boot: this.boot,
      seq: this.#seqMeta++,
      ts: this.#now(),
      kind: this.spec.kind,
      site: this.spec.site,
      fw: FIRMWARE_VERSION,
      hw: HARDWARE[this.spec.kind].hw,
      mac: this.mac,
      sensors,
      cfg: this.#config(),
      emulated: true,
    };
    this.#send("meta", encodeCbor(msg), QOS1_RETAIN, false);
  }

  #event(
    type: string,
    sev: "info" | "warning" | "critical",
    msg: string,
    data?: Record<string, number | string | boolean | null>,
    fault?: FaultId,
  ): void {
    const m = {
      v: SCHEMA_VERSION,
      dev: this.spec.dev,
      boot: this.boot,
      seq: this.#seqEvent++,
      ts: this.#now(),
      type,
      sev,
      msg,
      fault,
      data,
    };
    this.#send("event", encodeCbor(m), QOS1, true);
  }

  #reply(name: string, id: string, ok: boolean, err?: string, data?: Record<string, unknown>): void {
    const m = { v: SCHEMA_VERSION, dev: this.spec.dev, boot: this.boot, seq: this.#seqRes++, ts: this.#now(), id, ok, err, data };
    this.#send(`cmd/${name}/res`, encodeCbor(m), QOS1, true);
  }

  // ------------------------------------------------------------------------------------- readings

  #sample(at: number): void {
    if (this.done) return;
    const kind = this.spec.kind;
    const dtS = this.#lastSampleAt < 0 ? (this.#intervalMs * this.#opts.accel) / 1000 : (at - this.#lastSampleAt) / 1000;
    this.#lastSampleAt = at;
    if (kind === "gavage") this.#set(T_SAMPLE, nextFeedingAt(this.#profiles.feeding, at));
    else this.#set(T_SAMPLE, at + this.#sim(this.#intervalMs));
    if (this.#inspection) return; // the station is busy measuring a lot
    if (!this.#sensorsOk.every(Boolean)) {
      this.counters.i2c_err++;
      return;
    }
    if (this.#opts.i2cErrorProb > 0 && this.#hw.next() < this.#opts.i2cErrorProb) this.counters.i2c_err++; // retried, succeeded
    switch (kind) {
      case "fridge":
        this.#fridgeReading(dtS);
        break;
      case "sqal":
        this.#sqalSample(undefined, undefined, undefined);
        break;
      case "gavage":
        this.#feeding(at);
        break;
      default:
        break;
    }
    this.counters.readings++;
    if (this.#opts.cycles > 0 && this.counters.readings >= this.#opts.cycles) {
      this.done = true;
      this.#cancel(T_SAMPLE);
    }
  }

  #fridgeReading(dtS: number): void {
    const model = this.#fridge as FridgeModel;
    const v: FridgeValues = model.read(this.#rng, dtS, this.#faultProb);
    const truth = model.lastReadingFault;
    this.#faultEvents(model);
    const head = (this.#fridgeHead ??= fridgeTelemetryHead(this.spec.dev, this.boot));
    const msg = encodeFridgeTelemetry(head, this.#seqTelemetry++, this.#now(), v, truth);
    this.#send("telemetry", msg, QOS1, true);
    // What the real controller can see: readings outside the validation bounds raise an alarm, cleared
    // only once the value is well back inside for a few readings (no flapping around a bound).
    const alarms = (this.#alarms ??= new AlarmDebouncer(model.profile));
    alarms.update(v);
    if ((alarms.raised | alarms.cleared) === 0) return;
    for (let i = 0; i < ALARM_FIELDS.length; i++) {
      const f = ALARM_FIELDS[i] as FridgeField;
      const x = v[f];
      if (alarms.raised & (1 << i)) this.#event("alarm", "warning", `${f} out of range: ${x}`, { field: f, value: x });
      else if (alarms.cleared & (1 << i)) this.#event("alarm_cleared", "info", `${f} back in range`, { field: f, value: x });
    }
  }

  #faultEvents(model: FridgeModel): void {
    for (const t of model.takeTransitions()) {
      if (t.type === "onset") {
        this.#event(
          "sim_fault_onset",
          "warning",
          `SIMULATION GROUND TRUTH: fault ${t.fault} starts`,
          { readings: t.readings, injected: t.injected },
          t.fault,
        );
      } else {
        this.#event("sim_fault_cleared", "info", `SIMULATION GROUND TRUTH: fault ${t.fault} cleared`, undefined, t.fault);
      }
    }
  }

  #sqalSample(lot: string | undefined, idx: number | undefined, profile: InspectionProfile | undefined): void {
    const p = this.#profiles.sqal;
    const tier = drawTier(this.#rng, profile ? p.inspectionMix[profile] : tierWeights(p));
    const m = measureSample(this.#rng, p, tier);
    const seq = this.#seqTelemetry++;
    const msg = {
      v: SCHEMA_VERSION,
      dev: this.spec.dev,
      boot: this.boot,
      seq,
      ts: this.#now(),
      sample: `${this.boot}.${seq}`,
      lot,
      idx,
      tof: m.tof,
      spec: m.spec,
      temp: m.temp,
      sim: { tier: m.tier, defects: m.defects },
    };
    this.#send("telemetry", encodeCbor(msg), QOS1, true);
  }

  #feeding(at: number): void {
    const fp = this.#profiles.feeding;
    if (!this.#lot || this.#lot.finished) {
      if (this.#lot?.finished) {
        this.#stored.lots += 1;
        this.#store.save(this.spec.dev, this.#stored);
      }
      const number = lotNumber(this.spec.ordinal, this.spec.siteCount, this.#stored.lots);
      this.#lot = new FeedingLot(fp, this.#rng, this.spec.site, lotCode(this.spec.site, at, number));
    }
    const lot = this.#lot;
    const v = lot.feed(this.#rng, momentOf(fp, at));
    const msg = { v: SCHEMA_VERSION, dev: this.spec.dev, boot: this.boot, seq: this.#seqTelemetry++, ts: this.#now(), ...v };
    this.#send("telemetry", encodeCbor(msg), QOS1, true);
    if (v.ready) {
      this.#event("lot_ready", "info", `lot ${lot.code} ready for slaughter`, {
        lot: lot.code,
        weight: v.weight,
        mortality: v.mortality,
        profile: lot.inspectionProfile,
        genetics: lot.genetics,
      });
    }
  }

  #inspectStep(_at: number): void {
    const insp = this.#inspection;
    if (!insp) return;
    this.#sqalSample(insp.lot, insp.idx, insp.profile);
    insp.idx++;
    if (insp.idx < insp.n) {
      this.#set(T_INSPECT, this.#now() + this.#sim(this.#opts.inspectPaceMs));
    } else {
      this.#inspection = undefined;
      this.#event("inspection_done", "info", `lot ${insp.lot}: ${insp.n} samples measured`, {
        lot: insp.lot,
        n: insp.n,
        profile: insp.profile,
      });
    }
  }

  // ------------------------------------------------------------------------------------- commands

  #onCommand(name: string, payload: Uint8Array): void {
    this.counters.commands++;
    let id = "unknown";
    try {
      const decoded = decodeCbor(payload);
      if (decoded.ok && decoded.value && typeof decoded.value === "object") {
        const raw = (decoded.value as { id?: unknown }).id;
        if (typeof raw === "string" && raw.length >= 1 && raw.length <= 64) id = raw;
      }
      if (!decoded.ok) return this.#refuse(name, id, decoded.error);
      const schema = (CommandSchemas as Record<string, (typeof CommandSchemas)[CommandName]>)[name];
      if (!schema) return this.#refuse(name, id, `unknown command ${JSON.stringify(name).slice(0, 64)}`);
      const parsed = schema.safeParse(decoded.value);
      if (!parsed.success) return this.#refuse(name, id, formatIssues(parsed.error).slice(0, 256));
      this.#execute(name as CommandName, parsed.data as Command);
    } catch (e) {
      this.counters.errors++;
      this.lastError = e;
      this.#refuse(name, id, "internal error");
    }
  }

  #refuse(name: string, id: string, why: string): void {
    this.counters.badCommands++;
    this.#reply(name, id, false, why.slice(0, 256));
  }

  #execute(name: CommandName, cmd: Command): void {
    switch (name) {
      case "inspect": {
        const c = cmd as Command<"inspect">;
        if (this.spec.kind !== "sqal") return this.#refuse(name, c.id, `inspect is not supported by a ${this.spec.kind} device`);
        if (!this.#sensorsOk.every(Boolean)) return this.#refuse(name, c.id, "sensor error: cannot measure");
        if (this.#inspection) return this.#refuse(name, c.id, `busy: inspecting lot ${this.#inspection.lot}`);
        if (this.done) return this.#refuse(name, c.id, "cycles budget spent");
        const profile = c.profile ?? "standard";
        this.#inspection = { lot: c.lot, n: c.n, idx: 0, profile };
        this.#set(T_INSPECT, this.#now() + this.#sim(this.#opts.inspectPaceMs));
        return this.#reply(name, c.id, true, undefined, { lot: c.lot, n: c.n, profile, pace_ms: this.#opts.inspectPaceMs });
      }
      case "fault": {
        const c = cmd as Command<"fault">;
        const model = this.#fridge;
        if (!model) return this.#refuse(name, c.id, `faults are not supported by a ${this.spec.kind} device`);
        if (c.action === "inject") {
          const fault = c.fault as FaultId;
          const readings = c.cycles ?? this.#rng.int(model.profile.faultReadings[0], model.profile.faultReadings[1]);
          model.inject(fault, readings);
          this.#faultEvents(model);
          return this.#reply(name, c.id, true, undefined, { fault, readings });
        }
        const was = model.clear();
        this.#faultEvents(model);
        return this.#reply(name, c.id, true, undefined, { cleared: was });
      }
      case "config": {
        const c = cmd as Command<"config">;
        if (c.fault_prob !== undefined) this.#faultProb = c.fault_prob;
        if (c.interval_ms !== undefined && c.interval_ms !== this.#intervalMs) {
          this.#intervalMs = c.interval_ms;
          if (this.spec.kind !== "gavage" && !this.done) this.#set(T_SAMPLE, this.#now() + this.#sim(this.#intervalMs));
        }
        this.#reply(name, c.id, true, undefined, this.#config());
        return this.#publishMeta();
      }
      case "reboot": {
        const c = cmd as Command<"reboot">;
        this.#reply(name, c.id, true, undefined, { delay_ms: c.delay_ms });
        this.#set(T_REBOOT, this.#now() + this.#sim(c.delay_ms));
        return;
      }
      case "status": {
        const c = cmd as Command<"status">;
        const now = this.#now();
        return this.#reply(name, c.id, true, undefined, {
          state: this.#statusState(),
          boot: this.boot,
          ...this.#statusFigures(now),
          fault: this.#fridge?.fault ?? null,
          inspecting: this.#inspection?.lot ?? null,
          lot: this.#lot?.code ?? null,
          cfg: this.#config(),
        });
      }
      default: {
        const never: never = name;
        return this.#refuse(String(never), "unknown", "unknown command");
      }
    }
  }
}

const weightsCache = new WeakMap<SqalProfile, Record<string, number>>();
function tierWeights(p: SqalProfile) {
  let w = weightsCache.get(p);
  if (!w) {
    w = Object.fromEntries(Object.entries(p.tiers).map(([k, t]) => [k, t.weight]));
    weightsCache.set(p, w);
  }
  return w as Record<keyof SqalProfile["tiers"], number>;
}
