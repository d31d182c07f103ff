import { join } from "node:path";
import { parseArgs } from "@esp-fleet/common/cli";
import { Command, InvalidArgumentError, Option } from "commander";
import { discoverMqttUrl } from "@esp-fleet/common/discovery";
import { ConfigError, errorMessage } from "@esp-fleet/common/errors";
import { createLogger } from "@esp-fleet/common/logger";
import { DEVICE_KINDS, type DeviceKind } from "@esp-fleet/schemas";
import { loadEmulatorConfig } from "./config.ts";
import { loadCredentialsFile, startFleet, type Fleet, type FleetStats } from "./fleet.ts";
import { tuneHeapGrowth } from "./heap.ts";

/** `60`, `60s`, `500ms`, `5m`, `1h` → ms; a bare number is in `unit`. */
export function parseDuration(value: string, unit: "ms" | "s"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a duration like 1000ms, 30s, 5m or 1h, got ${JSON.stringify(value)}`);
  const n = Number(m[1]);
  const u = m[2] ?? unit;
  return Math.round(n * (u === "ms" ? 1 : u === "s" ? 1000 : u === "m" ? 60_000 : 3_600_000));
}

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer ${min}…${max}`);
    return n;
  };
}

function numArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number ${min}…${max}`);
    return n;
  };
}

function kindsArg(v: string): DeviceKind[] {
  const kinds = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const k of kinds)
    if (!(DEVICE_KINDS as readonly string[]).includes(k))
      throw new InvalidArgumentError(`unknown kind ${JSON.stringify(k)} (sqal, fridge, gavage)`);
  if (kinds.length === 0) throw new InvalidArgumentError("at least one kind");
  return kinds as DeviceKind[];
}

function sitesArg(v: string): string[] {
  const sites = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of sites)
    if (!/^[A-Z]{2,4}$/.test(s))
      throw new InvalidArgumentError(`site ${JSON.stringify(s)} must be 2-4 capital letters (it starts every code_lot)`);
  if (sites.length === 0) throw new InvalidArgumentError("at least one site");
  return sites;
}

interface Flags {
  devices: number;
  kind: DeviceKind[];
  site: string[];
  url?: string;
  seed: string;
  accel: number;
  faultProb: number;
  interval: number;
  duration?: number;
  cycles?: number;
  serial?: string;
  baud?: number;
  id?: string;
  credentials?: string;
  passwordPattern?: string;
  dataDir: string;
  maxOffline: number;
  fifo?: number;
  heartbeat?: number;
  ramp?: number;
  progress: boolean;
  json: boolean;
}

function formatStats(s: FleetStats, rate: number): string {
  return (
    `devices ${s.devices} | online ${s.online} | connecting ${s.connecting} | ${Math.round(rate)} msg/s | sent ${s.sent} | ` +
    `buffered ${s.buffered} | dropped ${s.dropped} | reconnects ${s.reconnects} | errors ${s.errors + s.publishErrors}`
  );
}

export async function run(argv: string[]): Promise<number> {
  const cfg = loadEmulatorConfig();
  const program = new Command("esp-fleet emulate")
    .description("Run N emulated ESP32 devices (SQAL stations, fridges, feeding stations), each with its own MQTT session.")
    .option("-n, --devices <n>", "number of devices", intArg(0, 100_000), cfg.EMULATOR_DEVICES)
    .option("--kind <list>", "device kinds, comma-separated: sqal,fridge,gavage", kindsArg, kindsArg(cfg.EMULATOR_KINDS))
    .option("--site <list>", "sites, comma-separated (LL,LS,MT)", sitesArg, sitesArg(cfg.EMULATOR_SITES))
    .option("--url <url>", "broker URL (default: MQTT_URL, else discovered: broker:1883, else localhost:1883)", cfg.MQTT_URL)
    .option("--seed <seed>", "random seed (same seed ⇒ same readings)", cfg.EMULATOR_SEED)
    .option(
      "--accel <x>",
      "time acceleration ×1 … ×86400 for simulated processes and device clocks",
      numArg(1, 86_400),
      cfg.EMULATOR_ACCEL,
    )
    .option("--fault-prob <p>", "fridge: chance per reading that a random fault starts", numArg(0, 1), cfg.EMULATOR_FAULT_PROB)
    .option(
      "--interval <duration>",
      "wall time between readings (ms unless suffixed: 1s, 500ms)",
      (v) => parseDuration(v, "ms"),
      cfg.EMULATOR_INTERVAL_MS,
    )
    .option("--duration <duration>", "stop after this long (s unless suffixed: 90s, 5m, 1h)", (v) => parseDuration(v, "s"))
    .option("--cycles <n>", "stop after n readings per device", intArg(1, 10_000_000))
    .option("--serial <path>", "speak the serial protocol on this port instead of MQTT (one device)")
    .option("--baud <n>", "serial line rate (with --serial)", intArg(300, 10_000_000))
    .option("--id <device>", "device id (with --serial; default from kind and site)")
    .option("--credentials <file>", "JSON file mapping device id → password", cfg.EMULATOR_CREDENTIALS_FILE)
    .option("--password-pattern <pattern>", "device password pattern, {dev} = device id", cfg.EMULATOR_PASSWORD_PATTERN)
    .option("--data-dir <dir>", "where boot counters persist", cfg.DATA_DIR)
    .option(
      "--max-offline <duration>",
      "fail when no device is online for this long (s unless suffixed)",
      (v) => parseDuration(v, "s"),
      cfg.EMULATOR_MAX_OFFLINE_S * 1000,
    )
    .option("--fifo <n>", "offline FIFO capacity per device, messages", intArg(0, 1_000_000))
    .option("--heartbeat <duration>", "heartbeat interval (s unless suffixed)", (v) => parseDuration(v, "s"))
    .option("--ramp <duration>", "spread the first connections over this long (ms unless suffixed)", (v) =>
      parseDuration(v, "ms"),
    )
    .option("--no-progress", "no live progress line on stderr")
    .option("--json", "print the final summary as JSON on stdout", false)
    .addOption(new Option("--quiet").hideHelp());
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const f = program.opts<Flags>();
  const log = createLogger("emulator", { level: cfg.LOG_LEVEL });
  if (f.serial) return runSerial(f, log);

  tuneHeapGrowth(cfg.EMULATOR_HEAP_GROWTH_PERCENT);
  const url = (await discoverMqttUrl(f.url)).url;
  const credentials = f.credentials ? loadCredentialsFile(f.credentials) : undefined;
  let fleet: Fleet;
  try {
    fleet = await startFleet({
      url,
      mqttClient: cfg.EMULATOR_MQTT_CLIENT,
      devices: f.devices,
      kinds: f.kind,
      sites: f.site,
      seed: f.seed,
      accel: f.accel,
      faultProb: f.faultProb,
      intervalMs: f.interval,
      cycles: f.cycles,
      durationMs: f.duration,
      credentials,
      passwordPattern: f.passwordPattern,
      dataDir: f.dataDir,
      rampMs: f.ramp,
      logger: log,
      firmware: {
        ...(f.fifo !== undefined ? { fifoSize: f.fifo } : {}),
        ...(f.heartbeat !== undefined ? { heartbeatMs: f.heartbeat } : {}),
      },
    });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    process.stderr.write(`esp-fleet emulate: ${errorMessage(e)}\n`);
    return 1;
  }

  const started = Date.now();
  let failure: string | undefined;
  let lastOnlineAt = Date.now();
  let lastSent = 0;
  let lastAt = Date.now();
  let rate = 0;
  const tty = process.stderr.isTTY === true;
  let ticks = 0;
  let stopRequested = false;
  let wake: () => void = () => undefined;
  const interrupted = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const onSignal = () => {
    stopRequested = true;
    wake();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const timer = setInterval(() => {
    const s = fleet.stats();
    const now = Date.now();
    rate = ((s.sent - lastSent) * 1000) / Math.max(1, now - lastAt);
    lastSent = s.sent;
    lastAt = now;
    if (s.online > 0 || s.devices === 0) lastOnlineAt = now;
    else if (now - lastOnlineAt > f.maxOffline) {
      failure = `no device online for ${Math.round((now - lastOnlineAt) / 1000)} s — broker ${url} unreachable or refusing the devices`;
      wake();
    }
    ticks++;
    if (f.progress && !f.json) {
      if (tty) process.stderr.write(`\r\x1b[2K${formatStats(s, rate)}`);
      else if (ticks % 10 === 0) process.stderr.write(`${formatStats(s, rate)}\n`);
    }
  }, 1000);
  await Promise.race([fleet.done, interrupted]);
  clearInterval(timer);
  process.removeListener("SIGINT", onSignal);
  process.removeListener("SIGTERM", onSignal);
  if (tty && f.progress && !f.json) process.stderr.write("\n");
  await fleet.stop();
  const s = fleet.stats();
  const elapsed = (Date.now() - started) / 1000;
  if (!failure && s.errors > 0) failure = `${s.errors} internal errors (see the log)`;
  const summary = {
    ok: failure === undefined,
    failure,
    url,
    elapsed_s: Math.round(elapsed * 10) / 10,
    stopped_by: stopRequested ? "signal" : failure ? "failure" : f.cycles ? "cycles" : "duration",
    ...s,
    msgs_per_s: Math.round((s.sent / Math.max(elapsed, 0.001)) * 10) / 10,
  };
  if (f.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(
      [
        `emulate: ${s.devices} devices (${f.kind.join(",")}) on ${url} for ${summary.elapsed_s} s`,
        `  readings ${s.readings}, messages sent ${s.sent} (${summary.msgs_per_s}/s), buffered ${s.buffered}, dropped ${s.dropped}`,
        `  reconnects ${s.reconnects}, i2c errors ${s.i2cErrors}, publish errors ${s.publishErrors}, commands ${s.commands} (${s.badCommands} refused)`,
        failure ? `  FAILED: ${failure}` : "  ok",
      ].join("\n") + "\n",
    );
  }
  return failure ? 1 : 0;
}

async function runSerial(f: Flags, log: ReturnType<typeof createLogger>): Promise<number> {
  type SerialModule = typeof import("@esp-fleet/hil/run-serial-device");
  let mod: SerialModule;
  try {
    mod = await import("@esp-fleet/hil/run-serial-device");
  } catch (e) {
    process.stderr.write(`esp-fleet emulate: serial transport not available (${errorMessage(e)})\n`);
    return 1;
  }
  const kind = f.kind[0] as DeviceKind;
  const site = f.site[0] as string;
  const id = f.id ?? `${kind === "sqal" ? "ESP32" : kind.toUpperCase()}_${site}_01`;
  const handle = await mod.runSerialDevice({
    path: f.serial as string,
    baud: f.baud,
    kind,
    site,
    id,
    seed: f.seed,
    accel: f.accel,
    firmware: {
      intervalMs: f.interval,
      faultProb: f.faultProb,
      ...(f.cycles !== undefined ? { cycles: f.cycles } : {}),
      ...(f.fifo !== undefined ? { fifoSize: f.fifo } : {}),
      ...(f.heartbeat !== undefined ? { heartbeatMs: f.heartbeat } : {}),
    },
    stateDir: join(f.dataDir, "emulator"),
    log,
  });
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const finish = () => {
      clearInterval(t);
      process.removeListener("SIGINT", finish);
      process.removeListener("SIGTERM", finish);
      resolve();
    };
    const t = setInterval(() => {
      const c = handle.device.counters;
      if ((f.duration !== undefined && Date.now() - started >= f.duration) || (handle.device.done && c.buffered === 0)) finish();
    }, 200);
    process.once("SIGINT", finish);
    process.once("SIGTERM", finish);
  });
  await handle.stop();
  const c = handle.device.counters;
  process.stdout.write(
    `emulate --serial ${f.serial}: ${id} sent ${c.sent}, readings ${c.readings}, buffered ${c.buffered}, dropped ${c.dropped}, reconnects ${c.reconnects}\n`,
  );
  return c.errors > 0 ? 1 : 0;
}
