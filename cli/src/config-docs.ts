import { configDocs, type EnvSchema } from "@esp-fleet/common/config";
import { BrokerConfigSchema } from "@esp-fleet/broker/config";
import { EmulatorConfigSchema } from "@esp-fleet/device-emulator/config";
import { IngestConfigSchema } from "@esp-fleet/ingest/config";
import { SqalConfigSchema } from "@esp-fleet/sqal/config";
import { BridgeConfigSchema } from "@esp-fleet/hil/config";
import { ProvisionConfigSchema } from "@esp-fleet/broker/provision-cli";
import { StartConfigSchema } from "./config.ts";

/** Every process's environment schema, in README order. */
export const CONFIG_SCHEMAS: { process: string; command: string; schema: EnvSchema }[] = [
  { process: "all-in-one", command: "esp-fleet start", schema: StartConfigSchema },
  { process: "broker", command: "esp-fleet broker", schema: BrokerConfigSchema },
  { process: "ingest", command: "esp-fleet ingest", schema: IngestConfigSchema },
  { process: "sqal", command: "esp-fleet sqal", schema: SqalConfigSchema },
  { process: "emulator", command: "esp-fleet emulate", schema: EmulatorConfigSchema },
  { process: "serial bridge", command: "esp-fleet bridge", schema: BridgeConfigSchema },
  { process: "provisioning", command: "esp-fleet provision", schema: ProvisionConfigSchema },
];

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The README's configuration section (between the config markers), generated from the schemas. */
export function renderConfigTables(): string {
  const parts: string[] = [];
  for (const { process, command, schema } of CONFIG_SCHEMAS) {
    parts.push(`**${process}** (\`${command}\`)`, "", "| variable | default | description |", "|---|---|---|");
    for (const row of configDocs(schema)) {
      parts.push(`| \`${row.variable}\` | ${row.default ? `\`${cell(row.default)}\`` : ""} | ${cell(row.description)} |`);
    }
    parts.push("");
  }
  return parts.join("\n");
}

export const CONFIG_START = "<!-- config:start -->";
export const CONFIG_END = "<!-- config:end -->";

export function replaceConfigSection(readme: string): string {
  const start = readme.indexOf(CONFIG_START);
  const end = readme.indexOf(CONFIG_END);
  if (start < 0 || end < start) throw new Error("README.md lacks the config:start / config:end markers");
  return `${readme.slice(0, start + CONFIG_START.length)}\n${renderConfigTables()}${readme.slice(end)}`;
}
