import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = new URL("../..", import.meta.url).pathname;

/** In a fresh process: load `entry` (the broker, or the emulator's MQTT transport) as the CLI does, then
 * write one packet with mqtt-packet. */
async function loadAndWrite(entry: string, env: Record<string, string>) {
  const script = `
    await import(${JSON.stringify(entry)});
    const { mqttPacketQuiet } = await import("./common/src/quiet-debug.ts");
    const { createRequire } = await import("node:module");
    const mqtt = createRequire(import.meta.url)("mqtt-packet");
    const { PassThrough } = await import("node:stream");
    mqtt.writeToStream({ cmd: "publish", topic: "a/b", payload: Buffer.from("x"), qos: 0 }, new PassThrough());
    process.stdout.write(JSON.stringify({ quiet: mqttPacketQuiet, singleBuffer: mqtt.writeToStream.singleBuffer === true }));`;
  const { DEBUG: _unset, ...base } = process.env;
  const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: root,
    env: { ...base, ...env },
  });
  return { ...(JSON.parse(stdout) as { quiet: boolean; singleBuffer: boolean }), stderr };
}

describe("mqtt-packet loaded with quiet loggers and single-buffer writes", () => {
  it.each([
    ["the broker (before Aedes loads it)", "./broker/src/broker.ts"],
    ["the emulator's MQTT transport (before MQTT.js loads it)", "./device-emulator/src/transports/mqtt.ts"],
    ["ingest (before MQTT.js loads it)", "./ingest/src/service.ts"],
  ])(
    "is in place in %s, and DEBUG set at start-up still logs",
    async (_name, entry) => {
      const off = await loadAndWrite(entry, {});
      expect(off.quiet).toBe(true);
      expect(off.singleBuffer).toBe(true);
      expect(off.stderr).not.toContain("mqtt-packet:writeToStream");
      const on = await loadAndWrite(entry, { DEBUG: "mqtt-packet:writeToStream", DEBUG_COLORS: "0" });
      expect(on.quiet).toBe(true);
      expect(on.stderr).toContain("mqtt-packet:writeToStream publish");
    },
    30_000,
  );
});
