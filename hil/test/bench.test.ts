import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../src/bench-cli.ts";
import { junitXml, matches, topicMatches } from "../src/bench-runner.ts";
import { hasSocat } from "../src/pty.ts";

const scenariosDir = fileURLToPath(new URL("../scenarios/", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "hil-bench-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("bench building blocks", () => {
  it("matches MQTT filters and where-predicates", () => {
    expect(topicMatches("svc/sqal/fridges/+/diagnosis", "svc/sqal/fridges/F1/diagnosis")).toBe(true);
    expect(topicMatches("LL/fridge/F1/#", "LL/fridge/F1/cmd/fault/res")).toBe(true);
    expect(topicMatches("LL/fridge/F1/status", "LL/fridge/F1/status/x")).toBe(false);
    const m = { state: "online", cnt: { sent: 5 }, tof: { h: 100 } };
    expect(matches(m, { state: "online", "cnt.sent": { gte: 5 }, "tof.h": { lte: 100 } })).toBe(true);
    expect(matches(m, { state: { in: ["offline", "error"] } })).toBe(false);
    expect(matches(m, { reason: { exists: false }, state: { ne: "offline" } })).toBe(true);
  });

  it("refuses an invalid scenario file with exit code 2, naming the field", async () => {
    const bad = join(tmp, "bad.yaml");
    writeFileSync(bad, "name: x\ndevice: { kind: toaster }\nsteps: []\n");
    let err = "";
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
    try {
      expect(await run([bad])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(err).toMatch(/device\.kind/);
  });

  it("writes JUnit XML with one testcase per step and failures counted", () => {
    const xml = junitXml([
      {
        name: "a & b",
        ok: false,
        ms: 1200,
        steps: [
          { index: 0, name: "wait_online", ok: true, ms: 10, detail: "online" },
          { index: 1, name: "expect", ok: false, ms: 1000, detail: 'got 0 <none> "x"' },
        ],
      },
    ]);
    expect(xml).toContain('<testsuites name="esp-fleet bench" tests="2" failures="1"');
    expect(xml).toContain('<testsuite name="a &amp; b" tests="2" failures="1"');
    expect(xml).toContain('<failure message="got 0 &lt;none&gt; &quot;x&quot;"/>');
  });
});

const skip = process.env.CI !== "true" && !hasSocat();
describe.skipIf(skip)(
  `shipped scenarios against emulated devices (embedded broker, PGlite, ingest, sqal)${skip ? " (skipped: needs socat)" : ""}`,
  () => {
    it("all pass and produce JUnit XML; exit code is the verdict", async () => {
      const files = readdirSync(scenariosDir)
        .filter((f) => f.endsWith(".yaml"))
        .map((f) => join(scenariosDir, f));
      const junit = join(tmp, "junit.xml");
      const out: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
      let code: number;
      try {
        code = await run([...files, "--junit", junit]);
      } finally {
        process.stdout.write = write;
      }
      const report = out.join("");
      expect(report, report).toContain(`${files.length}/${files.length} scenarios passed`);
      expect(code).toBe(0);
      const xml = readFileSync(junit, "utf8");
      expect(xml).toMatch(/<testsuites name="esp-fleet bench" tests="\d+" failures="0"/);
      expect(xml.match(/<testsuite /g)).toHaveLength(files.length);
    }, 240_000);
  },
);
