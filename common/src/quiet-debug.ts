import { createRequire } from "node:module";
import { dirname } from "node:path";

const require = createRequire(import.meta.url);

/**
 * Load mqtt-packet with no-op loggers when its `debug` namespaces are off (docs/broker.md, "Throughput"; the emulator loads it too).
 *
 * mqtt-packet calls `debug(…)` about ten times per packet it parses or writes. Even disabled, each call
 * of the `debug` package collects its rest arguments into an array and runs the `enabled` getter: 6 % of
 * the broker's CPU in a 1 → 1 profile. mqtt-packet creates its loggers once, when its modules load, so
 * this loads it first — before Aedes imports it — while `debug` hands out a no-op for every namespace
 * that `DEBUG` does not enable, then puts the real `debug` back for everyone else. `DEBUG=mqtt-packet:*`
 * set at start-up still logs; only switching it on later at run time (`debug.enable`) no longer reaches
 * mqtt-packet. If mqtt-packet is already loaded (another module got there first) nothing changes.
 * Returns whether the quiet loggers are in place.
 */
export const mqttPacketQuiet = loadMqttPacketQuietly();

function loadMqttPacketQuietly(): boolean {
  const mainPath = require.resolve("mqtt-packet");
  // the ESM loader may have registered (not yet run) it while linking Aedes; only a loaded one is too late
  if (require.cache[mainPath]?.loaded) return false;
  const debugPath = require.resolve("debug", { paths: [dirname(mainPath)] });
  type CreateDebug = ((namespace: string) => unknown) & { enabled(namespace: string): boolean };
  const createDebug = require(debugPath) as CreateDebug;
  const cached = require.cache[debugPath];
  if (!cached) return false;
  const off = Object.assign(() => {}, { enabled: false });
  cached.exports = (namespace: string) => (createDebug.enabled(namespace) ? createDebug(namespace) : off);
  try {
    require(mainPath);
  } finally {
    cached.exports = createDebug;
  }
  return true;
}
