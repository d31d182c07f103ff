import { Command } from "commander";
import { parseArgs } from "@esp-fleet/common/cli";
import { configDocs } from "@esp-fleet/common/config";
import { BrokerConfigSchema } from "./config.ts";
import { main } from "./main.ts";

/** `esp-fleet broker`: the broker alone, configured by environment variables. */
export async function run(argv: string[]): Promise<number> {
  const vars = configDocs(BrokerConfigSchema)
    .map((r) => `  ${r.variable.padEnd(26)} ${r.description}${r.default ? ` (default ${r.default})` : ""}`)
    .join("\n");
  const program = new Command("esp-fleet broker")
    .description(
      "The MQTT broker (Aedes): TCP, WebSocket and optional TLS listeners, per-device credentials, topic ACLs, health/metrics over HTTP.",
    )
    .addHelpText("after", `\nConfigured by environment variables:\n${vars}\n`);
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  return main();
}
