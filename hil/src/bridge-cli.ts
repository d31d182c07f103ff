import { Command } from "commander";
import { parseArgs, untilShutdownSignal } from "@esp-fleet/common/cli";
import { loadConfig } from "@esp-fleet/common/config";
import { discoverMqttUrl } from "@esp-fleet/common/discovery";
import { buildHttpApp, createHttpContext } from "@esp-fleet/common/http";
import { createLogger } from "@esp-fleet/common/logger";
import { ConfigError } from "@esp-fleet/common/errors";
import { SerialBridge } from "./bridge.ts";
import { BridgeConfigSchema } from "./config.ts";

/** `esp-fleet bridge --port PATH [--baud N] [--url mqtt://…]` — runs until SIGINT/SIGTERM. */
export async function run(argv: string[]): Promise<number> {
  const program = new Command("esp-fleet bridge")
    .description("serial ↔ MQTT bridge for a real or emulated ESP32 (DESIGN §4)")
    .option("--port <path>", "serial port, e.g. /dev/ttyUSB0 or a socat pty link (env SERIAL_PORT)")
    .option("--baud <n>", "line rate (env SERIAL_BAUD, default 921600)")
    .option("--url <url>", "MQTT broker URL (env MQTT_URL, else discovery)")
    .option("--username <name>", "MQTT username (default: the device id from its hello)")
    .option("--password <secret>", "MQTT password (env BRIDGE_MQTT_PASSWORD)")
    .option("--http-port <n>", "serve /health and /metrics on this port (env BRIDGE_HTTP_PORT; 0 = off)");
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const o = program.opts<{
    port?: string;
    baud?: string;
    url?: string;
    username?: string;
    password?: string;
    httpPort?: string;
  }>();
  const cfg = loadConfig(BridgeConfigSchema, {
    ...process.env,
    ...(o.port ? { SERIAL_PORT: o.port } : {}),
    ...(o.baud ? { SERIAL_BAUD: o.baud } : {}),
    ...(o.url ? { MQTT_URL: o.url } : {}),
    ...(o.username ? { BRIDGE_MQTT_USERNAME: o.username } : {}),
    ...(o.password ? { BRIDGE_MQTT_PASSWORD: o.password } : {}),
    ...(o.httpPort ? { BRIDGE_HTTP_PORT: o.httpPort } : {}),
  });
  if (!cfg.SERIAL_PORT) throw new ConfigError('SERIAL_PORT="": a serial port is required (--port PATH)');
  const log = createLogger("bridge", { level: cfg.LOG_LEVEL });
  const { url: mqttUrl } = await discoverMqttUrl(cfg.MQTT_URL);
  const http = createHttpContext(log);
  const bridge = new SerialBridge({
    port: cfg.SERIAL_PORT,
    baud: cfg.SERIAL_BAUD,
    mqttUrl,
    username: cfg.BRIDGE_MQTT_USERNAME,
    password: cfg.BRIDGE_MQTT_PASSWORD,
    statusIntervalMs: cfg.BRIDGE_STATUS_INTERVAL_MS,
    log,
    metrics: http.metrics,
  });
  const app = cfg.BRIDGE_HTTP_PORT ? buildHttpApp(http) : undefined;
  if (app) await app.listen({ port: cfg.BRIDGE_HTTP_PORT, host: "0.0.0.0" });
  await bridge.start();
  log.info({ port: cfg.SERIAL_PORT, baud: cfg.SERIAL_BAUD, mqttUrl }, "bridge running");
  await untilShutdownSignal(log);
  await bridge.stop();
  await app?.close();
  process.stdout.write(`${JSON.stringify({ summary: bridge.counters, link: bridge.linkCounters })}\n`);
  return 0;
}
