import { describe, expect, it } from "vitest";
import { canPublish, canSubscribe, type Principal } from "../src/acl.ts";

const device: Principal = { kind: "user", username: "dev1", role: "device", scopes: [] };
const svc = (...scopes: ("ingest" | "sqal" | "bridge" | "api")[]): Principal => ({
  kind: "user",
  username: "s",
  role: "service",
  scopes,
});
const viewer: Principal = { kind: "user", username: "v", role: "viewer", scopes: [] };

describe("device ACL", () => {
  it.each(["telemetry", "status", "meta", "event", "log", "cmd/inspect/res"])("publishes its own %s", (ch) => {
    expect(canPublish(device, `s1/sqal/dev1/${ch}`)).toBe(true);
  });
  it("never another device's topics, its own commands, services or $SYS", () => {
    for (const t of [
      "s1/sqal/dev2/telemetry",
      "s1/sqal/dev1/cmd/inspect",
      "svc/sqal/x",
      "json/s1/sqal/dev1/telemetry",
      "$SYS/x",
      "s1/sqal/dev1/other",
      "a/b",
    ])
      expect(canPublish(device, t), t).toBe(false);
  });
  it("subscribes only to its own command filters", () => {
    for (const f of ["s1/sqal/dev1/cmd/+", "s1/sqal/dev1/cmd/#", "s1/sqal/dev1/cmd/inspect"])
      expect(canSubscribe(device, f), f).toBe(true);
    for (const f of ["s1/sqal/dev2/cmd/+", "+/+/dev1/cmd/+", "#", "s1/sqal/+/cmd/+", "s1/sqal/dev1/telemetry", "s1/sqal/dev1/#"])
      expect(canSubscribe(device, f), f).toBe(false);
  });
});

describe("service, viewer and anonymous ACL", () => {
  it("ingest reads device channels and writes only the JSON mirror and svc/ingest", () => {
    expect(canSubscribe(svc("ingest"), "+/+/+/#")).toBe(true);
    expect(canPublish(svc("ingest"), "json/s1/fridge/f1/telemetry")).toBe(true);
    expect(canPublish(svc("ingest"), "svc/ingest/stats")).toBe(true);
    expect(canPublish(svc("ingest"), "s1/fridge/f1/cmd/reboot")).toBe(false);
    expect(canPublish(svc("ingest"), "svc/sqal/lots/X/grade")).toBe(false);
  });
  it("sqal sends commands and publishes under svc/sqal", () => {
    expect(canPublish(svc("sqal"), "s1/sqal/q1/cmd/inspect")).toBe(true);
    expect(canPublish(svc("sqal"), "svc/sqal/lots/LL2512001/grade")).toBe(true);
    expect(canPublish(svc("sqal"), "s1/sqal/q1/telemetry")).toBe(false);
  });
  it("bridge acts for any device: device channels out, commands in", () => {
    expect(canPublish(svc("bridge"), "s1/fridge/any/telemetry")).toBe(true);
    expect(canPublish(svc("bridge"), "s1/fridge/any/cmd/x")).toBe(false);
    expect(canSubscribe(svc("bridge"), "s1/fridge/any/cmd/+")).toBe(true);
    expect(canSubscribe(svc("bridge"), "#")).toBe(false);
  });
  it("viewer subscribes to everything and publishes nothing", () => {
    for (const f of ["#", "json/#", "svc/#", "$SYS/#"]) expect(canSubscribe(viewer, f)).toBe(true);
    expect(canPublish(viewer, "s1/sqal/dev1/telemetry")).toBe(false);
  });
  it("anonymous read reads, anonymous full writes, nobody writes $SYS", () => {
    expect(canSubscribe({ kind: "anonymous", policy: "read" }, "#")).toBe(true);
    expect(canPublish({ kind: "anonymous", policy: "read" }, "a/b")).toBe(false);
    expect(canPublish({ kind: "anonymous", policy: "full" }, "a/b")).toBe(true);
    expect(canPublish({ kind: "anonymous", policy: "full" }, "$SYS/x")).toBe(false);
    expect(canPublish(svc("api", "sqal", "ingest", "bridge"), "$SYS/broker/x")).toBe(false);
  });
});
