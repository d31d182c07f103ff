import { afterEach, describe, expect, it, vi } from "vitest";
import { run } from "../src/cli.ts";
import { SqalConfigSchema } from "../src/config.ts";
import { loadConfig } from "@esp-fleet/common/config";

describe("esp-fleet sqal", () => {
  const out: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    out.length = 0;
  });
  function capture() {
    vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
  }

  it("--help describes the service and the report command", async () => {
    capture();
    expect(await run(["--help"])).toBe(0);
    expect(out.join("")).toContain("diagnosis-report");
  });

  it("diagnosis-report prints the seeded confusion matrix and exits 0 when the targets are met", async () => {
    capture();
    expect(await run(["diagnosis-report", "--seed", "3", "--fridges", "10", "--readings", "200", "--json"])).toBe(0);
    const r = JSON.parse(out.join("")) as { readings: number; identifiedRate: number; matrix: number[][] };
    expect(r.readings).toBe(2000);
    expect(r.matrix).toHaveLength(13);
    expect(r.identifiedRate).toBeGreaterThanOrEqual(0.95);
  });

  it("refuses a bad flag value", async () => {
    capture();
    expect(await run(["diagnosis-report", "--fault-prob", "2"])).not.toBe(0);
    expect(out.join("")).toMatch(/fault-prob/);
  });

  it("a bad environment value stops the service before any connection, naming the variable", async () => {
    expect(() => loadConfig(SqalConfigSchema, { SQAL_SAMPLES_PER_LOT: "0" })).toThrow(/SQAL_SAMPLES_PER_LOT/);
    expect(loadConfig(SqalConfigSchema, {}).HTTP_PORT).toBe(8083);
    capture();
    vi.stubEnv("SQAL_LOT_MIN_GOOD_SHARE", "2");
    expect(await run([])).toBe(2);
    expect(out.join("")).toContain("SQAL_LOT_MIN_GOOD_SHARE");
    vi.unstubAllEnvs();
  });
});
