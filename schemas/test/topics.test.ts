import { describe, expect, it } from "vitest";
import {
  commandFilter,
  commandReplyTopic,
  commandTopic,
  deviceTopic,
  parseTopic,
  parseTopicCached,
  serviceTopic,
} from "../src/topics.ts";

const dev = { site: "LL", kind: "sqal" as const, dev: "ESP32_LL_01" };

describe("topics", () => {
  it("builds device, command and service topics", () => {
    expect(deviceTopic(dev, "telemetry")).toBe("LL/sqal/ESP32_LL_01/telemetry");
    expect(commandTopic(dev, "inspect")).toBe("LL/sqal/ESP32_LL_01/cmd/inspect");
    expect(commandReplyTopic(dev, "inspect")).toBe("LL/sqal/ESP32_LL_01/cmd/inspect/res");
    expect(commandFilter(dev)).toBe("LL/sqal/ESP32_LL_01/cmd/+");
    expect(serviceTopic("sqal", "lots", "LL2512001", "status")).toBe("svc/sqal/lots/LL2512001/status");
  });

  it("refuses invalid segments when building", () => {
    expect(() => deviceTopic({ ...dev, dev: "a/b" }, "status")).toThrow(/device id/);
    expect(() => deviceTopic({ ...dev, site: "+" }, "status")).toThrow(/site/);
    expect(() => commandTopic(dev, "#")).toThrow(/command name/);
  });

  it("parses what it builds", () => {
    expect(parseTopic("LL/sqal/ESP32_LL_01/telemetry")).toEqual({
      ok: true,
      value: { type: "device", site: "LL", kind: "sqal", dev: "ESP32_LL_01", channel: "telemetry" },
    });
    expect(parseTopic("LL/fridge/F-1/cmd/fault/res")).toEqual({
      ok: true,
      value: { type: "device", site: "LL", kind: "fridge", dev: "F-1", channel: "cmd_res", cmd: "fault" },
    });
    const json = parseTopic("json/LL/fridge/F-1/status");
    expect(json.ok && json.value.type).toBe("json");
  });

  it.each([
    ["/LL/sqal/x/telemetry", /site/],
    ["LL/toaster/x/telemetry", /unknown device kind/],
    ["LL/sqal/x y/telemetry", /device id/],
    ["LL/sqal/x/bogus", /unknown channel/],
    ["LL/sqal/x/telemetry/extra", /too many segments/],
    ["LL/sqal/x/cmd/inspect/nope", /unexpected segments/],
    ["LL/sqal", /segments/],
  ])("rejects %s with a precise reason", (topic, reason) => {
    const r = parseTopic(topic);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(reason);
  });
});

describe("parseTopicCached", () => {
  it("answers as parseTopic does, with one frozen result per topic", () => {
    for (const t of [
      "LL/sqal/ESP32_LL_01/telemetry",
      "LL/fridge/F1/cmd/fault/res",
      "svc/sqal/lots/LL2512001",
      "json/LL/sqal/D/status",
      "bad/topic",
      "LL/toaster/D/telemetry",
    ]) {
      const r = parseTopicCached(t);
      expect(r).toEqual(parseTopic(t));
      expect(parseTopicCached(t)).toBe(r);
      expect(Object.isFrozen(r)).toBe(true);
      if (r.ok) expect(Object.isFrozen(r.value)).toBe(true);
    }
  });
});
