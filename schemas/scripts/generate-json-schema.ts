// Writes schemas/json-schema/*.json from the zod schemas (the single source of truth).
// `npm run schemas:generate`; a test fails when the committed files are out of date.
import { mkdirSync, writeFileSync } from "node:fs";
import { WIRE_SCHEMAS, toWireJsonSchema } from "../src/json-schema.ts";

const dir = new URL("../json-schema/", import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(WIRE_SCHEMAS)) {
  writeFileSync(new URL(`${name}.json`, dir), `${JSON.stringify(toWireJsonSchema(name, schema), null, 2)}\n`);
}
console.log(`wrote ${Object.keys(WIRE_SCHEMAS).length} JSON Schema files to schemas/json-schema/`);
