import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, ManualClock, configDocs, createRng, discover, env, loadConfig } from "../src/index.ts";

const Schema = z.object({
  HTTP_PORT: env.port(3000, "HTTP listen port"),
  MQTT_ANONYMOUS: env.enumOf(["off", "read", "full"] as const, "off", "anonymous access"),
  FLAG: env.bool(false, "a switch"),
  MQTT_URL: env.url("broker URL"),
});

describe("loadConfig", () => {
  it("applies defaults, coerces, and freezes", () => {
    const c = loadConfig(Schema, { HTTP_PORT: "8080", FLAG: "on" });
    expect(c).toEqual({ HTTP_PORT: 8080, MQTT_ANONYMOUS: "off", FLAG: true, MQTT_URL: undefined });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("treats an empty variable as unset", () => {
    expect(loadConfig(Schema, { HTTP_PORT: "" }).HTTP_PORT).toBe(3000);
  });

  it("names the variable and the problem on a bad value", () => {
    expect(() => loadConfig(Schema, { HTTP_PORT: "70000" })).toThrow(ConfigError);
    expect(() => loadConfig(Schema, { HTTP_PORT: "70000" })).toThrow(/HTTP_PORT="70000": must be a port number/);
    expect(() => loadConfig(Schema, { MQTT_ANONYMOUS: "maybe" })).toThrow(/MQTT_ANONYMOUS="maybe"/);
    expect(() => loadConfig(Schema, { MQTT_URL: "not a url" })).toThrow(/MQTT_URL="not a url": must be a URL/);
  });

  it("documents every variable with its default", () => {
    expect(configDocs(Schema)).toEqual([
      { variable: "HTTP_PORT", default: "3000", description: "HTTP listen port" },
      { variable: "MQTT_ANONYMOUS", default: "off", description: "anonymous access" },
      { variable: "FLAG", default: "off", description: "a switch" },
      { variable: "MQTT_URL", default: "", description: "broker URL" },
    ]);
  });
});

describe("ManualClock", () => {
  it("fires timers in time order, including ones scheduled while advancing", () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b@20"), 20);
    clock.setTimeout(() => {
      fired.push("a@10");
      clock.setTimeout(() => fired.push("c@15"), 5);
    }, 10);
    const cancelled = clock.setTimeout(() => fired.push("never"), 12);
    cancelled.cancel();
    clock.advance(19);
    expect(fired).toEqual(["a@10", "c@15"]);
    expect(clock.now()).toBe(19);
    clock.advance(1);
    expect(fired).toEqual(["a@10", "c@15", "b@20"]);
  });
});

describe("createRng", () => {
  it("is deterministic per seed and forks independent streams", () => {
    const a = createRng(42);
    const b = createRng(42);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(createRng(43).next()).not.toBe(xs[0]);
    expect(createRng("x").fork("dev1").next()).toBe(createRng("x").fork("dev1").next());
    const n = createRng(1);
    const samples = Array.from({ length: 20_000 }, () => n.normal(5, 2));
    const mean = samples.reduce((s, x) => s + x, 0) / samples.length;
    const sd = Math.sqrt(samples.reduce((s, x) => s + (x - mean) ** 2, 0) / samples.length);
    expect(mean).toBeCloseTo(5, 1);
    expect(sd).toBeCloseTo(2, 1);
  });
});

describe("discover", () => {
  it("prefers the explicit URL, then a resolvable compose name, then localhost", async () => {
    const build = (h: string) => `mqtt://${h}:1883`;
    expect(await discover("mqtt://x:1", "broker", build)).toEqual({ url: "mqtt://x:1", source: "explicit" });
    expect(await discover(undefined, "broker", build, async () => ({}))).toEqual({ url: "mqtt://broker:1883", source: "dns" });
    expect(
      await discover(undefined, "broker", build, async () => {
        throw new Error("ENOTFOUND");
      }),
    ).toEqual({ url: "mqtt://localhost:1883", source: "localhost" });
  });
});
