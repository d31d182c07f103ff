// first: mqtt-packet must load with its quiet loggers before MQTT.js or Aedes import it (common/src/quiet-debug.ts)
import "@esp-fleet/common/quiet-debug";
// one write() per MQTT packet (common/src/packet-writes.ts)
import "@esp-fleet/common/packet-writes";
import { ConfigError, FleetError } from "@esp-fleet/common/errors";
import type { CommandEntry } from "./command.ts";

export const COMMANDS: CommandEntry[] = [
  {
    name: "start",
    summary: "the main job: broker + ingest + sqal + HTTP on the embedded database, plus a demo fleet",
    load: () => import("./start.ts"),
  },
  {
    name: "broker",
    summary: "the MQTT broker (Aedes): TCP, WebSocket, auth, ACLs, health/metrics",
    load: () => import("@esp-fleet/broker/cli"),
  },
  {
    name: "ingest",
    summary: "MQTT → PostgreSQL ingest service with dead letters and the device/telemetry API",
    load: () => import("@esp-fleet/ingest/cli"),
  },
  { name: "sqal", summary: "graders, lot monitor, fridge diagnosis and the lot API", load: () => import("@esp-fleet/sqal/cli") },
  {
    name: "emulate",
    summary: "run N emulated ESP32 devices against a broker (or over a serial port)",
    load: () => import("@esp-fleet/device-emulator/cli"),
  },
  {
    name: "bridge",
    summary: "serial ↔ MQTT bridge for a real or emulated ESP32",
    load: () => import("@esp-fleet/hil/bridge-cli"),
  },
  {
    name: "bench",
    summary: "run hardware-in-the-loop scenario files; JUnit XML; exit code = verdict",
    load: () => import("@esp-fleet/hil/bench-cli"),
  },
  {
    name: "decode",
    summary: "read `mosquitto_sub -v -F '%t %x'` lines on stdin, print one JSON line per message",
    load: () => import("./decode.ts"),
  },
  {
    name: "check",
    summary: "test every service's health and the paths between them; JSON report",
    load: () => import("./check.ts"),
  },
  {
    name: "provision",
    summary: "create / rotate / revoke / list device and service credentials",
    load: () => import("@esp-fleet/broker/provision-cli"),
  },
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: esp-fleet <command> [options]",
    "",
    "Emulated ESP32 sensor fleet and its MQTT/CBOR backend.",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `esp-fleet <command> --help` for a command's options.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 1;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`esp-fleet: unknown command ${JSON.stringify(name)}\n\n${usage()}\n`);
    return 2;
  }
  const mod = await entry.load();
  return mod.run(rest);
}

const isMain = process.argv[1] && /(esp-fleet(\.mjs)?|main\.ts)$/.test(process.argv[1]);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      if (e instanceof ConfigError) process.stderr.write(`esp-fleet: ${e.message}\n`);
      else if (e instanceof FleetError) process.stderr.write(`esp-fleet: ${e.code}: ${e.message}\n`);
      else process.stderr.write(`esp-fleet: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = e instanceof ConfigError ? 78 : 1;
    },
  );
}
