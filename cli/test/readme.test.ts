import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { replaceConfigSection } from "../src/config-docs.ts";
import { COMMANDS } from "../src/main.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README", () => {
  it("carries the configuration tables generated from the config schemas (npm run docs:config)", () => {
    expect(readme).toBe(replaceConfigSection(readme));
  });

  it("gives the two commands", () => {
    expect(readme).toContain("npm ci && npm start");
    expect(readme).toMatch(/^npm test\b/m);
  });

  it("only tours commands that exist", () => {
    const used = [...readme.matchAll(/esp-fleet (\w+)/g)].map((m) => m[1]);
    const known = new Set(COMMANDS.map((c) => c.name));
    for (const name of used) expect(known.has(name!), `esp-fleet ${name}`).toBe(true);
  });
});
