import { Command, InvalidArgumentError } from "commander";
import { parseArgs, untilShutdownSignal } from "@esp-fleet/common/cli";
import { ConfigError, FleetError } from "@esp-fleet/common/errors";
import { createLogger } from "@esp-fleet/common/logger";
import { startAllInOne, DEFAULT_DEMO, type AllInOne, type DemoOptions } from "./all-in-one.ts";
import { loadStartConfig } from "./config.ts";

const intArg = (name: string, min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer ${min}…${max}`);
  return n;
};
const numArg = (name: string, min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number ${min}…${max}`);
  return n;
};

export function banner(app: AllInOne, anonymous: string): string {
  const http = `http://localhost:${app.ports.http}`;
  const auth = anonymous === "off" ? ` -u ${app.viewer.username} -P '${app.viewer.password}'` : "";
  const fleet = app.fleetStats();
  return [
    "",
    "esp-fleet is running",
    `  HTTP        ${http}  (health ${http}/health/ready · metrics ${http}/metrics · API docs ${http}/docs)`,
    `  MQTT        mqtt://localhost:${app.ports.mqtt}${app.ports.ws ? `  · WebSocket ws://localhost:${app.ports.ws}` : ""}`,
    `  watching    ${anonymous === "off" ? "anonymous access is off; use the viewer credential" : `anonymous read is ${anonymous === "full" ? "FULL (development only)" : "on"}`} · viewer: ${app.viewer.username} / ${app.viewer.password}`,
    fleet ? `  demo fleet  ${fleet.devices} devices; credentials in ${app.demoCredentialsFile}` : "  demo fleet  off",
    "",
    "Watch the traffic (CBOR, decoded):",
    `  mosquitto_sub -h localhost -p ${app.ports.mqtt}${auth} -t '+/+/+/#' -t 'svc/#' -v -F '%t %x' | npx esp-fleet decode`,
    "…or its JSON mirror, with no decoder:",
    `  mosquitto_sub -h localhost -p ${app.ports.mqtt}${auth} -t 'json/#' -v`,
    "Follow the lots:",
    `  curl -s ${http}/api/v1/lots`,
    "",
    "Ctrl-C to stop.",
    "",
  ].join("\n");
}

export async function run(argv: string[]): Promise<number> {
  const program = new Command("esp-fleet start")
    .description(
      "The main job: broker + ingest + sqal + one HTTP server on the embedded database (or DATABASE_URL), plus a demo fleet.",
    )
    .option("--no-demo", "run the services without the demo fleet")
    .option("--sites <list>", "demo sites, comma-separated", DEFAULT_DEMO.sites.join(","))
    .option("--sqal <n>", "SQAL stations per site", intArg("--sqal", 0, 1000), DEFAULT_DEMO.sqal)
    .option("--fridges <n>", "fridges per site", intArg("--fridges", 0, 1000), DEFAULT_DEMO.fridges)
    .option("--feeding <n>", "feeding stations per site", intArg("--feeding", 0, 100), DEFAULT_DEMO.feeding)
    .option("--accel <x>", "time acceleration of fridges and stations", numArg("--accel", 1, 86_400), DEFAULT_DEMO.accel)
    .option(
      "--feeding-accel <x>",
      "time acceleration of the feeding lots (8640 = a simulated day every 10 s: first lot decided in ~3 min)",
      numArg("--feeding-accel", 1, 86_400),
      DEFAULT_DEMO.feedingAccel,
    )
    .option("--interval <ms>", "wall ms between readings", intArg("--interval", 100, 3_600_000), DEFAULT_DEMO.intervalMs)
    .option(
      "--fault-prob <p>",
      "fridge random fault probability per reading",
      numArg("--fault-prob", 0, 1),
      DEFAULT_DEMO.faultProb,
    )
    .option("--seed <seed>", "random seed of the demo fleet", DEFAULT_DEMO.seed)
    .addHelpText(
      "after",
      "\nEnvironment: HTTP_PORT (3000), MQTT_PORT (1883), MQTT_WS_PORT (9001), MQTT_ANONYMOUS (read), DATA_DIR (./data),\nDATABASE_URL (unset = embedded PGlite), LOG_LEVEL (info). See the README's configuration table.",
    );
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const o = program.opts<{
    demo: boolean;
    sites: string;
    sqal: number;
    fridges: number;
    feeding: number;
    accel: number;
    feedingAccel: number;
    interval: number;
    faultProb: number;
    seed: string;
  }>();

  let config;
  try {
    config = loadStartConfig();
  } catch (e) {
    process.stderr.write(`esp-fleet start: ${(e as Error).message}\n`);
    return 78;
  }
  const logger = createLogger("esp-fleet", { level: config.LOG_LEVEL });
  const demo: DemoOptions | false = o.demo && {
    sites: o.sites
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    sqal: o.sqal,
    fridges: o.fridges,
    feeding: o.feeding,
    accel: o.accel,
    feedingAccel: o.feedingAccel,
    intervalMs: o.interval,
    faultProb: o.faultProb,
    seed: o.seed,
  };

  const t0 = performance.now();
  let app: AllInOne;
  try {
    app = await startAllInOne({ config, demo, logger });
  } catch (e) {
    const msg = e instanceof FleetError ? e.message : e instanceof Error ? e.message : String(e);
    process.stderr.write(`esp-fleet start: ${msg}\n`);
    return e instanceof ConfigError ? 78 : 1;
  }
  logger.info({ ms: Math.round(performance.now() - t0), ports: app.ports }, "ready");
  process.stdout.write(banner(app, config.MQTT_ANONYMOUS));

  // A progress line every 30 s: what a person watching the terminal wants to know.
  const progress = setInterval(() => {
    const s = app.ingest.stats();
    const f = app.fleetStats();
    logger.info(
      { stored: s.stored, deadLetters: s.deadLettered, pending: s.pending, devicesOnline: f?.online, sent: f?.sent },
      "progress",
    );
  }, 30_000);
  progress.unref();

  await untilShutdownSignal(logger);
  clearInterval(progress);
  await app.stop();
  const s = app.ingest.stats();
  process.stdout.write(`stopped: stored ${s.stored} readings, ${s.deadLettered} dead letters; data kept in ${config.DATA_DIR}\n`);
  return 0;
}
