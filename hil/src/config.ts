import { z } from "zod";
import { env } from "@esp-fleet/common/config";

/** The bridge's environment (flags override). */
export const BridgeConfigSchema = z.object({
  MQTT_URL: env.url("broker the bridge connects to as the device (default: discovery, DESIGN §6)"),
  SERIAL_PORT: env.optionalString("serial port of the device, e.g. /dev/ttyUSB0 (or --port)"),
  SERIAL_BAUD: env.int(921600, 300, 4_000_000, "line rate, 8N1"),
  BRIDGE_MQTT_USERNAME: env.optionalString("MQTT username; default: the device id from its hello (per-device credentials)"),
  BRIDGE_MQTT_PASSWORD: env.optionalString("MQTT password (the device's, or a bridge role's)"),
  BRIDGE_HTTP_PORT: env.port(0, "HTTP port for /health and /metrics; 0 = no HTTP server"),
  BRIDGE_STATUS_INTERVAL_MS: env.int(10_000, 500, 3_600_000, "how often the bridge publishes svc/bridge/{dev}/status"),
  LOG_LEVEL: env.logLevel(),
});
export type BridgeConfig = z.infer<typeof BridgeConfigSchema>;
