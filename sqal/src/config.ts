import { z } from "zod";
import { env } from "@esp-fleet/common/config";

/** `esp-fleet sqal` configuration (environment variables). */
export const SqalConfigSchema = z.object({
  MQTT_URL: env.url("broker to subscribe to (default: discovered — `broker` in compose, else localhost:1883)"),
  MQTT_USERNAME: env.optionalString("MQTT user name (the sqal service credential from `esp-fleet provision`)"),
  MQTT_PASSWORD: env.optionalString("MQTT password"),
  MQTT_CLIENT_ID: env.string(
    "esp-fleet-sqal",
    "MQTT client id; stable, so the broker keeps the persistent session while sqal is down",
  ),
  DATABASE_URL: env.url("PostgreSQL/TimescaleDB server; unset = the embedded PGlite database in DATA_DIR"),
  DATA_DIR: env.string("./data", "embedded database directory (used when DATABASE_URL is unset)"),
  HTTP_PORT: env.port(8083, "health, metrics and the lot API"),
  SQAL_SAMPLES_PER_LOT: env.int(5, 1, 100, "samples a station measures per lot inspection (N)"),
  SQAL_INSPECTION_TIMEOUT_MS: env.int(
    120_000,
    100,
    86_400_000,
    "an inspection without N graded samples after this long fails (ms)",
  ),
  SQAL_MAX_ATTEMPTS: env.int(3, 1, 100, "inspection attempts (no station / refused / timeout) before the lot goes to `error`"),
  SQAL_RETRY_BASE_MS: env.int(5_000, 10, 3_600_000, "first retry delay; doubles per attempt (ms)"),
  SQAL_RETRY_MAX_MS: env.int(300_000, 10, 86_400_000, "longest retry delay (ms)"),
  SQAL_LOT_MIN_GOOD_SHARE: env.number(0.8, 0, 1, "lot decision: minimum share of samples graded B or better"),
  SQAL_LOT_REJECT_FORBIDDEN: env.bool(true, "lot decision: any REJECT sample rejects the lot"),
  LOG_LEVEL: env.logLevel(),
});
export type SqalConfig = z.infer<typeof SqalConfigSchema>;
