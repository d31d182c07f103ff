import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import {
  createBroker,
  brokerHttpPlugin,
  createCredential,
  rotateCredential,
  verifyPassword,
  type BrokerService,
  type CredentialStore,
  type Role,
  type ServiceScope,
} from "@esp-fleet/broker";
import { loadBrokerConfig } from "@esp-fleet/broker/config";
import { UnavailableError } from "@esp-fleet/common/errors";
import { buildHttpApp, createHttpContext, type HttpContext } from "@esp-fleet/common/http";
import type { Logger } from "@esp-fleet/common/logger";
import { migrate, openDb, type Db } from "@esp-fleet/db";
import { fleetSpecs, startFleet, type DeviceSpec, type Fleet, type FleetStats } from "@esp-fleet/device-emulator";
import { createIngest, ingestHttpPlugin, type IngestService } from "@esp-fleet/ingest";
import { createSqal, sqalHttpPlugin, SimulationManager, type SqalService } from "@esp-fleet/sqal";
import { PROBE_DEVICE } from "./check.ts";
import type { StartConfig } from "./config.ts";

/** The demo fleet `esp-fleet start` runs beside the services. */
export interface DemoOptions {
  sites: string[];
  /** per site */
  sqal: number;
  fridges: number;
  feeding: number;
  seed: string;
  /** acceleration of the sensor devices' simulated processes (fridge physics) */
  accel: number;
  /** acceleration of the feeding stations: 8640 = one simulated day every 10 s, so a lot is decided within ~3 min */
  feedingAccel: number;
  intervalMs: number;
  faultProb: number;
}

export const DEFAULT_DEMO: DemoOptions = {
  sites: ["LL", "LS", "MT"],
  sqal: 2,
  fridges: 2,
  feeding: 1,
  seed: "demo",
  accel: 1,
  feedingAccel: 8640,
  intervalMs: 2000,
  faultProb: 0.02,
};

export interface AllInOne {
  http: FastifyInstance;
  broker: BrokerService;
  db: Db;
  ingest: IngestService;
  sqal: SqalService;
  fleets: Fleet[];
  ports: { http: number; mqtt: number; ws: number | undefined };
  /** the viewer credential (also usable by mosquitto_sub when anonymous read is off) */
  viewer: { username: string; password: string };
  demoCredentialsFile: string | undefined;
  fleetStats(): FleetStats | undefined;
  stop(): Promise<void>;
}

const STOP_STEP_TIMEOUT_MS = 15_000;

/** A secret the all-in-one keeps in `${DATA_DIR}/secrets.json` (0600) so restarts reuse its accounts. */
type Secrets = Record<string, string>;

async function readSecrets(path: string): Promise<Secrets> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as Secrets;
  } catch {
    return {};
  }
}

/**
 * Make sure `username` exists with a password we know: reuse the remembered one when it still verifies,
 * otherwise create (or rotate) the credential and remember the new password.
 */
async function ensureAccount(
  store: CredentialStore,
  secrets: Secrets,
  username: string,
  role: Role,
  scopes: ServiceScope[] = [],
): Promise<string> {
  const existing = await store.get(username);
  const known = secrets[username];
  if (existing && !existing.revokedAt && known && (await verifyPassword(known, existing.hash))) return known;
  const { password } = existing
    ? await rotateCredential(store, username)
    : await createCredential(store, { username, role, scopes });
  secrets[username] = password;
  return password;
}

function portInUse(e: unknown, variable: string, port: number): Error {
  const code = (e as { code?: string }).code;
  if (code === "EADDRINUSE") {
    return new UnavailableError(
      `port ${port} is already in use — set ${variable} to a free port (e.g. ${variable}=${port + 1000})`,
    );
  }
  return e as Error;
}

/**
 * Everything in one process: broker (MQTT + WebSocket), ingest, sqal, one HTTP server mounting every
 * service's plugin, the embedded database (or DATABASE_URL), and an optional demo fleet. Ports may be 0
 * (tests); `ports` tells what was bound.
 */
export async function startAllInOne(opts: { config: StartConfig; demo: DemoOptions | false; logger: Logger }): Promise<AllInOne> {
  const { config, logger } = opts;
  const dataDir = config.DATA_DIR;
  await mkdir(dataDir, { recursive: true });
  // Shutdown steps in an explicit order: first what takes work in (HTTP, sqal — so a lot under
  // inspection is resumed on the next start rather than failed because its station went away), then the
  // devices (they publish `offline`), then ingest (flushes what it holds), the broker, the database.
  // Each step is bounded so a stuck one cannot hang Ctrl-C.
  const ORDER = ["http", "sqal", "demo fleet", "simulations", "ingest", "broker", "database"] as const;
  const stack: { name: (typeof ORDER)[number]; close: () => Promise<unknown> }[] = [];
  const onStop = (name: (typeof ORDER)[number], close: () => Promise<unknown>) => stack.push({ name, close });
  const unwind = async () => {
    stack.sort((a, b) => ORDER.indexOf(a.name) - ORDER.indexOf(b.name));
    for (const { name, close } of stack) {
      let timer: NodeJS.Timeout | undefined;
      try {
        const outcome = await Promise.race([
          close().then(() => "done" as const),
          new Promise<"timeout">((resolve) => {
            timer = setTimeout(() => resolve("timeout"), STOP_STEP_TIMEOUT_MS);
          }),
        ]);
        if (outcome === "timeout") logger.warn({ step: name, ms: STOP_STEP_TIMEOUT_MS }, "shutdown step timed out; going on");
      } catch (e) {
        logger.warn({ err: e, step: name }, "shutdown step failed");
      } finally {
        clearTimeout(timer);
      }
    }
  };

  try {
    const db = await openDb({ databaseUrl: config.DATABASE_URL, dataDir, logger: logger.child({ component: "db" }) });
    onStop("database", () => db.close());
    await migrate(db, { logger: logger.child({ component: "migrate" }) });

    const ctx: HttpContext = createHttpContext(logger);
    // The broker keeps credentials in the file store (DATA_DIR/credentials.json) so that
    // `esp-fleet provision` can add devices from another process while this one runs (PGlite is
    // single-process); the broker re-reads the file when it changes.
    const brokerConfig = loadBrokerConfig({
      ...process.env,
      MQTT_PORT: String(config.MQTT_PORT),
      MQTT_WS_PORT: String(config.MQTT_WS_PORT),
      MQTT_ANONYMOUS: config.MQTT_ANONYMOUS,
      MQTT_JSON_MIRROR: process.env.MQTT_JSON_MIRROR ?? "on",
      DATA_DIR: dataDir,
      DATABASE_URL: undefined,
      LOG_LEVEL: config.LOG_LEVEL,
    });
    const broker = await createBroker(brokerConfig, { logger, http: ctx });
    onStop("broker", () => broker.stop()); // also when start() fails: Aedes holds timers from creation
    const secretsPath = join(dataDir, "secrets.json");
    const secrets = await readSecrets(secretsPath);
    const ingestPassword = await ensureAccount(broker.credentials, secrets, "svc-ingest", "service", ["ingest"]);
    const sqalPassword = await ensureAccount(broker.credentials, secrets, "svc-sqal", "service", ["sqal"]);
    const viewerPassword = await ensureAccount(broker.credentials, secrets, "viewer", "viewer");
    // The device `esp-fleet check` publishes its probe reading as.
    await ensureAccount(broker.credentials, secrets, PROBE_DEVICE.dev, "device");

    let demoSpecs: DeviceSpec[] = [];
    const demoCredentials: Record<string, string> = {};
    if (opts.demo) {
      const d = opts.demo;
      demoSpecs = [
        ...fleetSpecs(d.sites.length * d.sqal, ["sqal"], d.sites),
        ...fleetSpecs(d.sites.length * d.fridges, ["fridge"], d.sites),
        ...fleetSpecs(d.sites.length * d.feeding, ["gavage"], d.sites),
      ];
      for (const spec of demoSpecs)
        demoCredentials[spec.dev] = await ensureAccount(broker.credentials, secrets, spec.dev, "device");
    }
    await writeFile(secretsPath, JSON.stringify(secrets, null, 2), { mode: 0o600 });

    let ports;
    try {
      ports = await broker.start();
    } catch (e) {
      throw portInUse(
        e,
        (e as { port?: number }).port === config.MQTT_WS_PORT ? "MQTT_WS_PORT" : "MQTT_PORT",
        (e as { port?: number }).port ?? config.MQTT_PORT,
      );
    }
    const mqttUrl = `mqtt://127.0.0.1:${ports.mqtt}`;

    const ingest = createIngest({
      db,
      mqttUrl,
      mqttUsername: "svc-ingest",
      mqttPassword: ingestPassword,
      clientId: "esp-fleet-ingest",
      logger,
      metrics: ctx.metrics,
    });
    await ingest.start();
    onStop("ingest", () => ingest.stop());

    const sqal = createSqal({
      db,
      mqttUrl,
      credentials: { username: "svc-sqal", password: sqalPassword },
      logger,
      metrics: ctx.metrics,
    });
    await sqal.start();
    onStop("sqal", () => sqal.stop());

    const http = buildHttpApp(ctx);
    await http.register(swagger, {
      openapi: {
        info: { title: "esp-fleet", version: "1", description: "Devices, telemetry, dead letters, lots and simulations" },
      },
    });
    await http.register(swaggerUi, { routePrefix: "/docs" });
    await http.register(brokerHttpPlugin, { broker });
    await http.register(ingestHttpPlugin, { db, ingest, ctx });
    // Fleets started over HTTP (POST /api/v1/simulations) get their device credentials provisioned here.
    const simulations = new SimulationManager(mqttUrl, logger, {
      provision: async (devs) => {
        const passwords: Record<string, string> = {};
        for (const dev of devs) passwords[dev] = await ensureAccount(broker.credentials, secrets, dev, "device");
        await writeFile(secretsPath, JSON.stringify(secrets, null, 2), { mode: 0o600 });
        return passwords;
      },
    });
    onStop("simulations", () => simulations.stopAll());
    await http.register(sqalHttpPlugin, { sqal, simulations, ctx });
    try {
      await http.listen({ port: config.HTTP_PORT, host: "0.0.0.0" });
    } catch (e) {
      throw portInUse(e, "HTTP_PORT", config.HTTP_PORT);
    }
    onStop("http", () => http.close());
    const httpPort = (http.server.address() as { port: number }).port;

    const fleets: Fleet[] = [];
    let demoCredentialsFile: string | undefined;
    if (opts.demo && demoSpecs.length > 0) {
      const d = opts.demo;
      demoCredentialsFile = join(dataDir, "demo-credentials.json");
      await writeFile(demoCredentialsFile, JSON.stringify(demoCredentials, null, 2), { mode: 0o600 });
      const common = {
        url: mqttUrl,
        credentials: demoCredentials,
        seed: d.seed,
        faultProb: d.faultProb,
        intervalMs: d.intervalMs,
        dataDir,
        logger: logger.child({ component: "demo-fleet" }),
      };
      const sensorSpecs = demoSpecs.filter((s) => s.kind !== "gavage");
      const feedingSpecs = demoSpecs.filter((s) => s.kind === "gavage");
      if (sensorSpecs.length) fleets.push(await startFleet({ ...common, specs: sensorSpecs, accel: d.accel }));
      if (feedingSpecs.length) fleets.push(await startFleet({ ...common, specs: feedingSpecs, accel: d.feedingAccel }));
      // Devices go offline (retained `offline`) before the services stop.
      onStop("demo fleet", () => Promise.all(fleets.map((f) => f.stop())));
    }

    let stopped: Promise<void> | undefined;
    return {
      http,
      broker,
      db,
      ingest,
      sqal,
      fleets,
      ports: { http: httpPort, mqtt: ports.mqtt, ws: ports.ws },
      viewer: { username: "viewer", password: viewerPassword },
      demoCredentialsFile,
      fleetStats: () => (fleets.length ? sumStats(fleets.map((f) => f.stats())) : undefined),
      stop: () => (stopped ??= unwind()),
    };
  } catch (e) {
    await unwind();
    throw e;
  }
}

function sumStats(all: FleetStats[]): FleetStats {
  const out = { ...all[0]! };
  for (const s of all.slice(1)) for (const k of Object.keys(out) as (keyof FleetStats)[]) out[k] += s[k];
  return out;
}
