import { z } from "zod";
import { env, loadConfig } from "@esp-fleet/common/config";
import { MQTT_CLIENT_KINDS } from "./transport.ts";

/**
 * Environment of `esp-fleet emulate` (the compose `emulator` service runs it this way). Command-line
 * flags override these. Every field has a description and a default (the README table is generated).
 */
export const EmulatorConfigSchema = z.object({
  MQTT_URL: env.url("broker URL; when unset it is discovered: `broker:1883` if that name resolves, else localhost:1883"),
  DATA_DIR: env.string("./data", "data directory; boot counters persist in {DATA_DIR}/emulator/{device}.json"),
  LOG_LEVEL: env.logLevel(),
  EMULATOR_DEVICES: env.int(3, 0, 100_000, "number of emulated devices"),
  EMULATOR_KINDS: env.string("sqal,fridge,gavage", "device kinds, comma-separated, assigned round-robin"),
  EMULATOR_SITES: env.string("LL,LS,MT", "sites, comma-separated, assigned round-robin"),
  EMULATOR_SEED: env.string("1", "random seed: same seed ⇒ same readings"),
  EMULATOR_ACCEL: env.number(1, 1, 86_400, "time acceleration of the simulated processes (×1 … ×86 400)"),
  EMULATOR_FAULT_PROB: env.number(0.1, 0, 1, "fridge: chance per reading that a random fault starts"),
  EMULATOR_INTERVAL_MS: env.int(1000, 100, 3_600_000, "wall milliseconds between readings (sqal, fridge)"),
  EMULATOR_PASSWORD_PATTERN: env.optionalString("device password pattern, `{dev}` = device id (e.g. secret-{dev})"),
  EMULATOR_CREDENTIALS_FILE: env.optionalString("JSON file mapping device id → password (wins over the pattern)"),
  EMULATOR_HEAP_GROWTH_PERCENT: env.int(
    100,
    0,
    300,
    "V8 heap growth past the live heap before a full GC, % (100 ⇒ ×2; 0 = V8's default, up to ×4): memory per device vs GC work",
  ),
  EMULATOR_MQTT_CLIENT: env.enumOf(
    MQTT_CLIENT_KINDS,
    "session",
    "devices' MQTT client: `session` (lean, mqtt:// and tcp:// URLs) or `mqttjs` (MQTT.js; always used for mqtts:// and ws(s)://)",
  ),
  EMULATOR_MAX_OFFLINE_S: env.int(60, 1, 86_400, "fail (exit 1) when no device has been online for this many seconds"),
});
export type EmulatorConfig = z.infer<typeof EmulatorConfigSchema>;

export function loadEmulatorConfig(source: Record<string, string | undefined> = process.env): Readonly<EmulatorConfig> {
  return loadConfig(EmulatorConfigSchema, source);
}
