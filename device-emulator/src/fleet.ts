import { readFileSync } from "node:fs";
import { join } from "node:path";
import { acceleratedClock, systemClock, type Clock } from "@esp-fleet/common/clock";
import { ConfigError } from "@esp-fleet/common/errors";
import { silentLogger, type Logger } from "@esp-fleet/common/logger";
import { DEVICE_KINDS, SEGMENT_RE, type DeviceKind } from "@esp-fleet/schemas";
import { EmulatedDevice, type DeviceProfiles, type DeviceSpec, type FirmwareOptions } from "./firmware.ts";
import { Scheduler } from "./scheduler.ts";
import { FileStateStore, MemoryStateStore, type DeviceStateStore } from "./state-store.ts";
import type { DeviceTransport, MqttClientKind, TransportFactory } from "./transport.ts";
import { mqttTransportFactory } from "./transports/mqtt.ts";

/** Device-id prefix per kind: `ESP32_LL_01`, `FRIDGE_LL_01`, `GAVAGE_LL_01`. */
export const DEVICE_ID_PREFIX: Record<DeviceKind, string> = { sqal: "ESP32", fridge: "FRIDGE", gavage: "GAVAGE" };
export const DEFAULT_SITES = ["LL", "LS", "MT"] as const;

export interface FleetOptions {
  /** Broker URL (required unless `transport` is given). */
  url?: string;
  /** Number of devices (default 3). */
  devices?: number;
  /** Kinds to cycle through (default all three). */
  kinds?: readonly DeviceKind[];
  /** Sites to cycle through (default LL, LS, MT). */
  sites?: readonly string[];
  seed?: number | string;
  /** Time acceleration ×1 … ×86 400 (default 1). */
  accel?: number;
  faultProb?: number;
  /** Wall ms between readings (default 1000). */
  intervalMs?: number;
  /** Stop producing readings after this many per device (0/undefined = unlimited). */
  cycles?: number;
  /** Stop the fleet after this many wall ms (the promise `fleet.done` resolves). */
  durationMs?: number;
  /** Per-device password: a map device id → password, or a function. */
  credentials?: Record<string, string> | ((dev: string) => string | undefined);
  /** Password pattern, `{dev}` replaced by the device id (e.g. `secret-{dev}`); used when `credentials` has none. */
  passwordPattern?: string;
  /** Where boot counters persist (`{dataDir}/emulator/{dev}.json`); default: in memory. */
  dataDir?: string;
  logger?: Logger;
  /** Spread the fleet's first connections over this many wall ms (default: 0.3 ms per device, ≥ 0). */
  rampMs?: number;
  /** Anything else of the firmware (fifoSize, heartbeatMs, backoff …). */
  firmware?: Partial<FirmwareOptions>;
  profiles?: Partial<DeviceProfiles>;
  /** Inject a clock (tests: ManualClock). Default: the system clock, accelerated by `accel`. */
  clock?: Clock;
  /** Inject transports (tests, serial). Default: one MQTT session per device on `url` (`mqttClient`). */
  transport?: TransportFactory;
  /** Explicit device list instead of generated ids. */
  specs?: readonly DeviceSpec[];
  /** MQTT connect timeout per attempt, ms (default 10 000). */
  connectTimeoutMs?: number;
  /** How long a clean close waits for the PUBACKs of what is in flight, ms (default 3 000); what is still
   * unacknowledged then is discarded and counted (`unacked`). */
  closeTimeoutMs?: number;
  /** The devices' MQTT client (transports/mqtt.ts `mqttTransportFactory`): `session` (default) or `mqttjs`. */
  mqttClient?: MqttClientKind;
  /**
   * Batch the fleet's timers on a grid of this many wall ms (readings fire up to this much later than
   * their nominal instant, in the same order). Default 10 with the system clock, 0 (exact) when a clock
   * is injected.
   */
  tickMs?: number;
}

export interface FleetStats {
  devices: number;
  online: number;
  connecting: number;
  sent: number;
  readings: number;
  buffered: number;
  dropped: number;
  reconnects: number;
  /** QoS 1 messages discarded unacknowledged when sessions closed (firmware counter `unacked`) */
  unacked: number;
  i2cErrors: number;
  publishErrors: number;
  commands: number;
  badCommands: number;
  errors: number;
  done: number;
}

export interface Fleet {
  readonly devices: readonly EmulatedDevice[];
  readonly scheduler: Scheduler;
  readonly clock: Clock;
  stats(): FleetStats;
  device(dev: string): EmulatedDevice | undefined;
  /** Resolves when `durationMs` has passed, or every device spent its `cycles`, or `stop()` was called. */
  readonly done: Promise<void>;
  /** Clean shutdown: every device publishes `status: offline` and disconnects cleanly. */
  stop(): Promise<void>;
  /** Power cut for every device (no DISCONNECT: the broker publishes the wills). For tests. */
  kill(): Promise<void>;
}

/** The generated device list: kinds round-robin, then sites; numbered per kind and site from 01. */
export function fleetSpecs(count: number, kinds: readonly DeviceKind[], sites: readonly string[]): DeviceSpec[] {
  if (!Number.isInteger(count) || count < 0) throw new ConfigError(`devices must be a non-negative integer, got ${count}`);
  if (kinds.length === 0) throw new ConfigError("at least one device kind is required");
  if (sites.length === 0) throw new ConfigError("at least one site is required");
  for (const k of kinds)
    if (!DEVICE_KINDS.includes(k)) throw new ConfigError(`unknown device kind ${JSON.stringify(k)} (sqal, fridge, gavage)`);
  for (const s of sites) if (!SEGMENT_RE.test(s)) throw new ConfigError(`site ${JSON.stringify(s)} must match [A-Za-z0-9_-]+`);
  const raw: { kind: DeviceKind; site: string; ordinal: number }[] = [];
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length] as DeviceKind;
    const site = sites[Math.floor(i / kinds.length) % sites.length] as string;
    const key = `${kind}/${site}`;
    const ordinal = (counts.get(key) ?? 0) + 1;
    counts.set(key, ordinal);
    raw.push({ kind, site, ordinal });
  }
  const width = Math.max(2, String(Math.max(0, ...counts.values())).length);
  return raw.map((r) => ({
    dev: `${DEVICE_ID_PREFIX[r.kind]}_${r.site}_${String(r.ordinal).padStart(width, "0")}`,
    kind: r.kind,
    site: r.site,
    ordinal: r.ordinal,
    siteCount: counts.get(`${r.kind}/${r.site}`) ?? 1,
  }));
}

/** Read a credentials file: a JSON object mapping device id → password. */
export function loadCredentialsFile(path: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`cannot read credentials file ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
    throw new ConfigError(`credentials file ${path} must be a JSON object {"DEVICE_ID": "password", …}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== "string")
      throw new ConfigError(`credentials file ${path}: password of ${JSON.stringify(k)} must be a string`);
    out[k] = v;
  }
  return out;
}

export function passwordFor(opts: Pick<FleetOptions, "credentials" | "passwordPattern">, dev: string): string | undefined {
  const c = opts.credentials;
  const fromCred = typeof c === "function" ? c(dev) : c?.[dev];
  if (fromCred !== undefined) return fromCred;
  return opts.passwordPattern?.replaceAll("{dev}", dev);
}

/**
 * Start a fleet of emulated devices sharing one scheduler and one clock. Each device gets its own
 * transport (by default its own MQTT session: transports/session.ts, or MQTT.js). Resolves once every device has been powered on
 * (connections proceed in the background; watch `stats().online`).
 */
export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  const log = opts.logger ?? silentLogger();
  const accel = opts.accel ?? 1;
  if (!(accel >= 1 && accel <= 86_400)) throw new ConfigError(`accel must be within 1 … 86400, got ${accel}`);
  const specs = opts.specs
    ? [...opts.specs]
    : fleetSpecs(opts.devices ?? 3, opts.kinds ?? DEVICE_KINDS, opts.sites ?? DEFAULT_SITES);
  const clock = opts.clock ?? (accel === 1 ? systemClock : acceleratedClock(accel));
  const tickMs = opts.tickMs ?? (opts.clock ? 0 : 10);
  if (!(tickMs >= 0 && tickMs <= 1000)) throw new ConfigError(`tickMs must be within 0 … 1000, got ${tickMs}`);
  const scheduler = new Scheduler(clock, {
    quantum: tickMs * accel,
    // A batch over budget continues after the I/O poll (a 0 ms timer could run again in the same timers phase).
    yieldFn: opts.clock ? undefined : (fn) => void setImmediate(fn),
  });
  let factory = opts.transport;
  if (!factory) {
    if (!opts.url) throw new ConfigError("a broker url is required (or a transport factory)");
    factory = mqttTransportFactory({
      url: opts.url,
      connectTimeoutMs: opts.connectTimeoutMs,
      closeTimeoutMs: opts.closeTimeoutMs,
      client: opts.mqttClient,
      credentials: (dev) => ({ username: dev, password: passwordFor(opts, dev) }),
    });
  }
  const store: DeviceStateStore = opts.dataDir ? new FileStateStore(join(opts.dataDir, "emulator")) : new MemoryStateStore();
  const rampMs = opts.rampMs ?? specs.length * 0.3;
  const firmware: Partial<FirmwareOptions> = {
    ...opts.firmware,
    accel,
    ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
    ...(opts.faultProb !== undefined ? { faultProb: opts.faultProb } : {}),
    ...(opts.cycles !== undefined ? { cycles: opts.cycles } : {}),
  };
  const devices: EmulatedDevice[] = [];
  const byId = new Map<string, EmulatedDevice>();
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i] as DeviceSpec;
    if (byId.has(spec.dev)) throw new ConfigError(`duplicate device id ${spec.dev}`);
    const transport: DeviceTransport = factory({ site: spec.site, kind: spec.kind, dev: spec.dev });
    const device = new EmulatedDevice(spec, {
      scheduler,
      transport,
      store,
      seed: opts.seed ?? 1,
      options: { ...firmware, startDelayMs: specs.length > 1 ? (rampMs * i) / specs.length : 0 },
      profiles: opts.profiles,
    });
    devices.push(device);
    byId.set(spec.dev, device);
  }
  for (const d of devices) d.start();
  log.info({ devices: devices.length, accel, url: opts.url }, "fleet started");

  let stopped = false;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const started = Date.now();
  const cycles = firmware.cycles ?? 0;
  const watch = setInterval(() => {
    if (stopped) return;
    if (opts.durationMs !== undefined && Date.now() - started >= opts.durationMs) resolveDone();
    else if (cycles > 0 && devices.every((d) => d.done && d.counters.buffered === 0)) resolveDone();
  }, 100);
  watch.unref();

  const stats = (): FleetStats => {
    const s: FleetStats = {
      devices: devices.length,
      online: 0,
      connecting: 0,
      sent: 0,
      readings: 0,
      buffered: 0,
      dropped: 0,
      reconnects: 0,
      unacked: 0,
      i2cErrors: 0,
      publishErrors: 0,
      commands: 0,
      badCommands: 0,
      errors: scheduler.errors,
      done: 0,
    };
    for (const d of devices) {
      const c = d.counters;
      if (d.state === "online") s.online++;
      else if (d.state === "connecting" || d.state === "booting" || d.state === "backoff") s.connecting++;
      s.sent += c.sent;
      s.readings += c.readings;
      s.buffered += c.buffered;
      s.dropped += c.dropped;
      s.reconnects += c.reconnects;
      s.unacked += c.unacked;
      s.i2cErrors += c.i2c_err;
      s.publishErrors += c.publishErrors;
      s.commands += c.commands;
      s.badCommands += c.badCommands;
      s.errors += c.errors;
      if (d.done) s.done++;
    }
    return s;
  };

  const finish = async (how: "stop" | "kill") => {
    if (stopped) return;
    stopped = true;
    clearInterval(watch);
    await Promise.all(devices.map((d) => (how === "stop" ? d.stop() : d.kill())));
    scheduler.stop();
    resolveDone();
    log.info({ ...stats() }, how === "stop" ? "fleet stopped" : "fleet killed");
  };

  return {
    devices,
    scheduler,
    clock,
    stats,
    device: (dev) => byId.get(dev),
    done,
    stop: () => finish("stop"),
    kill: () => finish("kill"),
  };
}

export interface RunDeviceOptions {
  spec: DeviceSpec;
  transport: DeviceTransport;
  seed?: number | string;
  /** Default: the system clock (accelerated by `firmware.accel` when > 1). */
  clock?: Clock;
  /** Share a fleet's scheduler instead of creating one. */
  scheduler?: Scheduler;
  store?: DeviceStateStore;
  dataDir?: string;
  firmware?: Partial<FirmwareOptions>;
  profiles?: Partial<DeviceProfiles>;
}

/**
 * Run ONE device on a given transport (e.g. the hil package's serial transport). Returns the started
 * device and `stop()`, which shuts it down cleanly and stops the scheduler if this call created it.
 */
export function runDevice(opts: RunDeviceOptions): { device: EmulatedDevice; scheduler: Scheduler; stop(): Promise<void> } {
  const accel = opts.firmware?.accel ?? 1;
  const scheduler = opts.scheduler ?? new Scheduler(opts.clock ?? (accel === 1 ? systemClock : acceleratedClock(accel)));
  const store = opts.store ?? (opts.dataDir ? new FileStateStore(join(opts.dataDir, "emulator")) : new MemoryStateStore());
  const device = new EmulatedDevice(opts.spec, {
    scheduler,
    transport: opts.transport,
    store,
    seed: opts.seed ?? 1,
    options: opts.firmware,
    profiles: opts.profiles,
  });
  device.start();
  return {
    device,
    scheduler,
    async stop() {
      await device.stop();
      if (!opts.scheduler) scheduler.stop();
    },
  };
}
