import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger } from "@esp-fleet/common/logger";
import { waitFor } from "@esp-fleet/common/testing";
import { startAllInOne, type AllInOne, type DemoOptions } from "../src/all-in-one.ts";
import { PROBE_DEVICE, runChecks } from "../src/check.ts";
import { loadStartConfig } from "../src/config.ts";
import { needsPrivatePostgres, startPrivatePostgres, type PrivatePostgres } from "@esp-fleet/common/testing-postgres";

const dataDir = mkdtempSync(join(tmpdir(), "esp-fleet-aio-"));
const config = loadStartConfig({ HTTP_PORT: "0", MQTT_PORT: "0", MQTT_WS_PORT: "0", DATA_DIR: dataDir, MQTT_ANONYMOUS: "off" });
const demo: DemoOptions = {
  sites: ["LL"],
  sqal: 1,
  fridges: 1,
  feeding: 0,
  seed: "aio-test",
  accel: 1,
  feedingAccel: 1,
  intervalMs: 200,
  faultProb: 0,
};
let app: AllInOne | undefined;

afterAll(async () => {
  await app?.stop();
  rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

async function secrets(): Promise<Record<string, string>> {
  const { readFile } = await import("node:fs/promises");
  return JSON.parse(await readFile(join(dataDir, "secrets.json"), "utf8")) as Record<string, string>;
}

describe("esp-fleet start (all-in-one) and esp-fleet check", () => {
  it("serves every service from one process; check passes every path", { timeout: 120_000 }, async () => {
    app = await startAllInOne({ config, demo, logger: silentLogger() });
    const http = `http://127.0.0.1:${app.ports.http}`;
    const ready = await fetch(`${http}/health/ready`);
    expect(ready.status).toBe(200);
    await waitFor(() => (app!.ingest.stats().stored > 5 ? true : undefined), "demo readings stored", 20_000);

    const s = await secrets();
    const results = await runChecks({
      http,
      mqtt: `mqtt://127.0.0.1:${app.ports.mqtt}`,
      viewer: { username: "viewer", password: s.viewer! },
      probe: { ...PROBE_DEVICE, password: s[PROBE_DEVICE.dev]! },
      timeoutMs: 15_000,
    });
    expect(
      results.filter((r) => r.status !== "passed"),
      JSON.stringify(results, null, 1),
    ).toEqual([]);
    expect(results.map((r) => r.name)).toContain("broker → sqal: probe sample graded");
    expect(results).toHaveLength(7);

    // A fleet started over HTTP gets credentials on this authenticating broker and runs to completion.
    const started = await fetch(`${http}/api/v1/simulations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ devices: 2, kinds: ["fridge"], cycles: 3, interval: 1, accel: 10, fault_prob: 0 }),
    });
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as { id: string };
    const done = await waitFor(
      async () => {
        const v = (await (await fetch(`${http}/api/v1/simulations/${id}`)).json()) as {
          status: string;
          stats: { readings: number } | null;
        };
        return v.status === "done" ? v : undefined;
      },
      "simulation done",
      30_000,
      200,
    );
    expect(done.stats?.readings).toBe(6);
    const simDevices = (await (await fetch(`${http}/api/v1/devices?site=SIM`)).json()) as { devices: { id: string }[] };
    expect(simDevices.devices.map((d) => d.id).sort()).toEqual(["FRIDGE_SIM_01", "FRIDGE_SIM_02"]);

    // An operator injects a fridge fault through the API; the device acknowledges and the diagnosis,
    // from the readings alone, names it.
    const post = (path: string, body: unknown) =>
      fetch(`${http}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const injected = await post("/api/v1/devices/FRIDGE_LL_01/commands/fault", {
      action: "inject",
      fault: "panne_electrique",
      cycles: 50,
    });
    expect(injected.status).toBe(200);
    expect(((await injected.json()) as { reply: { ok: boolean } }).reply.ok).toBe(true);
    await waitFor(
      async () => {
        const d = (await (await fetch(`${http}/api/v1/diagnosis`)).json()) as { fridges: { dev: string; state: string }[] };
        return d.fridges.find((f) => f.dev === "FRIDGE_LL_01")?.state === "panne_electrique";
      },
      "diagnosis of the injected power failure",
      20_000,
      200,
    );
    expect((await post("/api/v1/devices/FRIDGE_LL_01/commands/fault", { action: "inject", fault: "gremlins" })).status).toBe(400);
    expect((await post("/api/v1/devices/NOPE_01/commands/status", {})).status).toBe(404);

    // Every service's routes on the one server.
    for (const path of ["/api/v1/devices", "/api/v1/lots", "/api/v1/dead-letters", "/metrics", "/docs/json"]) {
      expect((await fetch(`${http}${path}`)).status, path).toBe(200);
    }
  });

  it("check fails, naming the path, when the broker is down", async () => {
    const http = `http://127.0.0.1:${app!.ports.http}`;
    const mqttUrl = `mqtt://127.0.0.1:${app!.ports.mqtt}`;
    const s = await secrets();
    await app!.broker.stop();
    const results = await runChecks({
      http,
      mqtt: mqttUrl,
      viewer: { username: "viewer", password: s.viewer! },
      probe: { ...PROBE_DEVICE, password: s[PROBE_DEVICE.dev]! },
      timeoutMs: 3000,
    });
    const failed = results.filter((r) => r.status === "failed").map((r) => r.name);
    expect(failed).toContain("broker: accepts the viewer");
    expect(failed).toContain("http: readiness (/health/ready: database, broker)");
  });

  it("refuses a port already in use with a one-line error naming the variable", async () => {
    const { createServer } = await import("node:net");
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "0.0.0.0", resolve));
    const port = (blocker.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), "esp-fleet-aio-port-"));
    try {
      const cfg = loadStartConfig({ HTTP_PORT: "0", MQTT_PORT: String(port), MQTT_WS_PORT: "0", DATA_DIR: dir });
      await expect(startAllInOne({ config: cfg, demo: false, logger: silentLogger() })).rejects.toThrow(
        new RegExp(`MQTT_PORT=${port}: .*address already in use`),
      );
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("keeps its data across a restart", { timeout: 120_000 }, async () => {
    await app!.stop();
    app = await startAllInOne({ config, demo: false, logger: silentLogger() });
    const res = await fetch(`http://127.0.0.1:${app.ports.http}/api/v1/devices?kind=fridge`);
    const body = (await res.json()) as { devices: { id: string }[] };
    expect(body.devices.map((d) => d.id)).toContain("FRIDGE_LL_01");
    const telemetry = (await (
      await fetch(`http://127.0.0.1:${app.ports.http}/api/v1/devices/FRIDGE_LL_01/telemetry`)
    ).json()) as {
      rows: unknown[];
    };
    expect(telemetry.rows.length).toBeGreaterThan(0);
  });
});

describe.skipIf(needsPrivatePostgres !== "")(
  `all-in-one on PostgreSQL: check names the database when it stops${needsPrivatePostgres}`,
  () => {
    let pg: PrivatePostgres | undefined;
    let aio: AllInOne | undefined;
    const dir = mkdtempSync(join(tmpdir(), "esp-fleet-aio-pg-"));
    afterAll(async () => {
      await aio?.stop();
      await pg?.destroy();
      rmSync(dir, { recursive: true, force: true });
    }, 120_000);

    it("fails while PostgreSQL is down and passes again once it is back", { timeout: 120_000 }, async () => {
      pg = await startPrivatePostgres();
      const cfg = loadStartConfig({ HTTP_PORT: "0", MQTT_PORT: "0", MQTT_WS_PORT: "0", DATA_DIR: dir, DATABASE_URL: pg.url });
      aio = await startAllInOne({ config: cfg, demo: false, logger: silentLogger() });
      const opts = {
        http: `http://127.0.0.1:${aio.ports.http}`,
        mqtt: `mqtt://127.0.0.1:${aio.ports.mqtt}`,
        viewer: undefined,
        probe: undefined,
        timeoutMs: 3000,
      };
      expect((await runChecks(opts)).filter((r) => r.status === "failed")).toEqual([]);
      await pg.stop();
      const down = await runChecks(opts);
      const ready = down.find((r) => r.name.startsWith("http: readiness"));
      expect(ready?.status).toBe("failed");
      expect(ready?.detail).toMatch(/not ready: .*db/);
      await pg.start();
      await waitFor(
        async () => (await runChecks(opts)).every((r) => r.status !== "failed"),
        "readiness after PostgreSQL restart",
        20_000,
        500,
      );
    });
  },
);
