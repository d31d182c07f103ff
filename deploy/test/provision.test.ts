/**
 * The compose `provision` one-shot (deploy/provision/ensure-credentials.ts), run the way the compose service
 * runs it (`node --import tsx …` in a child process) against a real PostgreSQL, then checked through a
 * real broker (`runBroker`, the `esp-fleet broker` composition root) on the same database with MQTT.js.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import mqtt from "mqtt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBroker } from "@esp-fleet/broker/main";
import { loadConfig } from "@esp-fleet/common/config";
import { createLogger } from "@esp-fleet/common/logger";
import { createTestDatabase, needsPostgres, testDatabaseUrl } from "@esp-fleet/common/testing";
import { PROBE_DEVICE } from "../../cli/src/check.ts";
import { main, ProvisionEnvSchema, provisionCredentials } from "../provision/ensure-credentials.ts";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const script = join(root, "deploy/provision/ensure-credentials.ts");

interface LogLine {
  msg?: string;
  created?: number;
  updated?: number;
  unchanged?: number;
  devices?: number;
}

describe.skipIf(!testDatabaseUrl)(`compose provision step${needsPostgres}`, () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let dataDir: string;
  // Roles are cluster-wide: a unique name, dropped afterwards.
  const readerRole = `grafana_reader_${process.pid}`;
  const base = () => ({
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    DATABASE_URL: database.url,
    INGEST_MQTT_PASSWORD: "ingest-secret-1",
    SQAL_MQTT_PASSWORD: "sqal-secret-1",
    VIEWER_MQTT_PASSWORD: "viewer-secret-1",
    EMULATOR_DEVICES: "4",
    EMULATOR_KINDS: "sqal,fridge",
    EMULATOR_SITES: "LL",
    EMULATOR_PASSWORD_PATTERN: "fleet-secret-{dev}",
    CHECK_PROBE_PASSWORD: "probe-secret",
    GRAFANA_DB_USER: readerRole,
    GRAFANA_DB_PASSWORD: "reader-secret-'quoted'",
    LOG_PRETTY: "0",
  });
  /** In-process (fast): the same function the script's main runs. */
  const ensure = (env: Record<string, string>) =>
    provisionCredentials(loadConfig(ProvisionEnvSchema, env), createLogger("provision-test", { level: "silent" }));
  /** As compose runs it: `node --import tsx deploy/provision/ensure-credentials.ts`. */
  const provision = async (env: Record<string, string>) => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", script], { cwd: root, env, timeout: 60_000 });
    const lines = stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogLine);
    return lines.find((l) => l.msg === "credentials provisioned")!;
  };

  beforeAll(async () => {
    database = await createTestDatabase("provision");
    dataDir = await mkdtemp(join(tmpdir(), "esp-fleet-provision-"));
  });
  afterAll(async () => {
    await database?.drop();
    const admin = new pg.Client({ connectionString: testDatabaseUrl });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${readerRole}`).finally(() => admin.end());
    await rm(dataDir, { recursive: true, force: true });
  });

  /** CONNECT to the broker; resolves true on CONNACK 0, false when refused. */
  const canConnect = (port: number, username: string, password: string) =>
    new Promise<boolean>((resolve) => {
      const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
        username,
        password,
        clientId: `${username}-${Math.random()}`,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      const done = (ok: boolean) => {
        client.end(true);
        resolve(ok);
      };
      client.once("connect", () => done(true));
      client.once("error", () => done(false));
    });

  it("creates the service, viewer and emulated-device accounts the broker then accepts, and nothing else", async () => {
    const first = await provision(base());
    expect(first).toMatchObject({ created: 3 + 1 + 4, updated: 0, unchanged: 0, devices: 4 + 1 });

    const broker = await runBroker({
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: "0",
      MQTT_WS_PORT: "0",
      HTTP_PORT: "0",
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      MQTT_ANONYMOUS: "off",
      LOG_LEVEL: "silent",
    });
    try {
      const port = broker.broker.ports.mqtt;
      expect(await canConnect(port, "ingest", "ingest-secret-1")).toBe(true);
      expect(await canConnect(port, "sqal", "sqal-secret-1")).toBe(true);
      expect(await canConnect(port, "viewer", "viewer-secret-1")).toBe(true);
      // The ids `esp-fleet emulate --devices 4 --kind sqal,fridge --site LL` uses, with the pattern's password.
      for (const dev of ["ESP32_LL_01", "FRIDGE_LL_01", "ESP32_LL_02", "FRIDGE_LL_02"]) {
        expect(await canConnect(port, dev, `fleet-secret-${dev}`), dev).toBe(true);
      }
      // The device `esp-fleet check` probes with, under the id the check uses by default.
      expect(await canConnect(port, PROBE_DEVICE.dev, "probe-secret")).toBe(true);
      expect(await canConnect(port, "ingest", "wrong")).toBe(false);
      expect(await canConnect(port, "ESP32_LL_03", "fleet-secret-ESP32_LL_03")).toBe(false);
    } finally {
      await broker.stop();
    }
  });

  it("is idempotent, and a password changed in .env rotates that account on the next run", async () => {
    expect(await ensure(base())).toMatchObject({ created: 0, updated: 0, unchanged: 8 });
    expect(await ensure({ ...base(), INGEST_MQTT_PASSWORD: "ingest-secret-2" })).toMatchObject({
      created: 0,
      updated: 1,
      unchanged: 7,
    });

    const broker = await runBroker({
      MQTT_HOST: "127.0.0.1",
      MQTT_PORT: "0",
      MQTT_WS_PORT: "0",
      HTTP_PORT: "0",
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      LOG_LEVEL: "silent",
    });
    try {
      expect(await canConnect(broker.broker.ports.mqtt, "ingest", "ingest-secret-2")).toBe(true);
      expect(await canConnect(broker.broker.ports.mqtt, "ingest", "ingest-secret-1")).toBe(false);
    } finally {
      await broker.stop();
    }
  });

  it("gives Grafana a login that reads the dashboard views and nothing else", async () => {
    const url = new URL(database.url);
    url.username = readerRole;
    url.password = "reader-secret-'quoted'";
    const reader = new pg.Client({ connectionString: url.toString() });
    await reader.connect();
    try {
      for (const view of ["dashboard.fridge_temperatures", "dashboard.active_faults"]) {
        await expect(reader.query(`SELECT * FROM ${view} LIMIT 1`), view).resolves.toBeDefined();
      }
      await expect(reader.query("SELECT * FROM credentials")).rejects.toThrow(/permission denied/);
      await expect(reader.query("SELECT * FROM fridge_readings")).rejects.toThrow(/permission denied/);
      await expect(reader.query("CREATE TABLE dashboard.x (a int)")).rejects.toThrow(/permission denied/);
    } finally {
      await reader.end();
    }
  });

  it("refuses to run without a database, or with devices but no password pattern, naming the variable", async () => {
    await expect(main({ ...base(), DATABASE_URL: "" })).rejects.toThrow(/DATABASE_URL/);
    await expect(main({ ...base(), EMULATOR_PASSWORD_PATTERN: "" })).rejects.toThrow(/EMULATOR_PASSWORD_PATTERN/);
    await expect(main({ ...base(), EMULATOR_KINDS: "sqal,toaster" })).rejects.toThrow(/EMULATOR_KINDS/);
  });
});
