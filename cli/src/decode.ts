import { createInterface } from "node:readline";
import { parseArgs } from "@esp-fleet/common/cli";
import { Command } from "commander";
import { decodeCbor, decodeMessage, parseTopic, toJsonValue } from "@esp-fleet/schemas";

/**
 * `esp-fleet decode`: turn `mosquitto_sub -v -F '%t %x'` output (topic, space, hex payload) into one
 * JSON object per line. A line that does not decode or validate is still printed, with `error`; the
 * tool always goes on with the next line.
 */
export interface DecodedLine {
  topic: string | null;
  parts?: unknown;
  schema?: string;
  payload?: unknown;
  error?: string;
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

export function decodeLine(line: string): DecodedLine | undefined {
  const trimmed = line.trim();
  if (!trimmed) return undefined;
  const space = trimmed.lastIndexOf(" ");
  if (space <= 0) return { topic: null, error: "expected '<topic> <hex payload>' (use mosquitto_sub -v -F '%t %x')" };
  const topic = trimmed.slice(0, space);
  const hex = trimmed.slice(space + 1);
  if (!HEX_RE.test(hex)) return { topic, error: "payload is not an even-length hex string (use -F '%t %x')" };
  const bytes = Buffer.from(hex, "hex");
  const parsed = parseTopic(topic);
  if (parsed.ok && parsed.value.type === "json") {
    // The broker's JSON mirror (MQTT_JSON_MIRROR): already JSON text.
    try {
      return { topic, parts: parsed.value, schema: "json-mirror", payload: JSON.parse(bytes.toString("utf8")) as unknown };
    } catch {
      return { topic, parts: parsed.value, error: "json: the JSON mirror's payload is not JSON" };
    }
  }
  const result = decodeMessage(topic, bytes);
  if (result.ok) {
    return { topic, parts: result.value.topic, schema: result.value.schema, payload: toJsonValue(result.value.message) };
  }
  const failure = result.error;
  const out: DecodedLine = { topic, error: `${failure.stage}: ${failure.error}` };
  if (parsed.ok) out.parts = parsed.value;
  if (failure.raw !== undefined) out.payload = toJsonValue(failure.raw);
  else if (failure.stage === "topic") {
    // Not one of our topics: still show the CBOR if it is CBOR.
    const cbor = decodeCbor(bytes);
    if (cbor.ok) {
      out.schema = "cbor";
      out.payload = toJsonValue(cbor.value);
    }
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const program = new Command("esp-fleet decode")
    .description("Read `mosquitto_sub -v -F '%t %x'` lines on stdin and print one JSON object per message.")
    .option("--pretty", "indent the JSON", false)
    .option("--strict", "exit 1 at the end if any line failed to decode", false)
    .addHelpText("after", "\nExample:\n  mosquitto_sub -h localhost -t '#' -v -F '%t %x' | npx esp-fleet decode\n");

  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const opts = program.opts<{ pretty: boolean; strict: boolean }>();
  let failed = 0;
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    const out = decodeLine(line);
    if (!out) continue;
    if (out.error) failed++;
    process.stdout.write(`${JSON.stringify(out, null, opts.pretty ? 2 : undefined)}\n`);
  }
  return opts.strict && failed > 0 ? 1 : 0;
}
