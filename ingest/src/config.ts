import { z } from "zod";
import { env } from "@esp-fleet/common/config";

/** `esp-fleet ingest` configuration (environment variables). */
export const IngestConfigSchema = z.object({
  MQTT_URL: env.url("broker to subscribe to (default: discovered — `broker` in compose, else localhost:1883)"),
  MQTT_USERNAME: env.optionalString("MQTT user name (a service credential from `esp-fleet provision`)"),
  MQTT_PASSWORD: env.optionalString("MQTT password"),
  MQTT_CLIENT_ID: env.string(
    "esp-fleet-ingest",
    "MQTT client id; keep it stable so the broker holds the persistent session's queue while ingest is down",
  ),
  DATABASE_URL: env.url("PostgreSQL/TimescaleDB server; unset = the embedded PGlite database in DATA_DIR"),
  DATA_DIR: env.string("./data", "embedded database directory (used when DATABASE_URL is unset)"),
  HTTP_PORT: env.port(8082, "health, metrics and the device/telemetry API"),
  INGEST_BATCH_SIZE: env.int(1000, 1, 50_000, "flush a batch at this many messages"),
  INGEST_BATCH_MS: env.int(50, 1, 60_000, "…or when its oldest message is this old (ms)"),
  INGEST_MAX_IN_FLIGHT: env.int(2, 1, 8, "batches committing at once, each on its own connection (always 1 on PGlite)"),
  INGEST_MAX_PENDING: env.int(20_000, 100, 1_000_000, "unacknowledged messages above which ingest stops reading from the broker"),
  INGEST_LAST_SEEN_MS: env.int(
    5000,
    0,
    3_600_000,
    "resolution of devices.last_seen (ms): rewritten at most this often per device",
  ),
  INGEST_SITES: env.optionalString("static partition: comma-separated sites this worker subscribes to (default: all)"),
  INGEST_PARTITION: env.optionalString(
    "static partition by device-id hash: index/count, e.g. 0/4 (every worker receives all, stores its share)",
  ),
  INGEST_SHARE_GROUP: env.optionalString("subscribe through $share/{group}/… (brokers with shared subscriptions; not Aedes 1.x)"),
  LOG_LEVEL: env.logLevel(),
});
export type IngestConfig = z.infer<typeof IngestConfigSchema>;
