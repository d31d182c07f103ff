// Regenerates the README's configuration tables from the config schemas: `npm run docs:config`.
import { readFileSync, writeFileSync } from "node:fs";
import { replaceConfigSection } from "../src/config-docs.ts";

const path = new URL("../../README.md", import.meta.url);
writeFileSync(path, replaceConfigSection(readFileSync(path, "utf8")));
console.log("README.md configuration tables updated");
