import { z } from "zod";
import { env, loadConfig } from "@esp-fleet/common/config";

/**
 * Environment of the all-in-one `esp-fleet start` (the main job). The broker, ingest and sqal inside it
 * read their own variables too (their tables are in the README); these are the ones `start` adds or
 * gives a different default.
 */
export const StartConfigSchema = z.object({
  HTTP_PORT: env.port(3000, "the one HTTP server: health, readiness, metrics, every API, OpenAPI docs at /docs"),
  MQTT_PORT: env.port(1883, "MQTT over TCP"),
  MQTT_WS_PORT: env.port(9001, "MQTT over WebSocket"),
  MQTT_ANONYMOUS: env.enumOf(
    ["off", "read", "full"] as const,
    "read",
    "clients without credentials: read = may watch every topic (mosquitto_sub), off = refused, full = development only",
  ),
  DATA_DIR: env.string("./data", "embedded database, credentials file and device state; survives restarts"),
  DATABASE_URL: env.url("use this PostgreSQL server instead of the embedded PGlite database"),
  LOG_LEVEL: env.logLevel(),
});
export type StartConfig = z.infer<typeof StartConfigSchema>;

export function loadStartConfig(source: Record<string, string | undefined> = process.env): Readonly<StartConfig> {
  return loadConfig(StartConfigSchema, source);
}
