/**
 * The compose `provision` one-shot: makes the broker's `credentials` table (DESIGN §6: per-device
 * credentials, service accounts with scopes, viewers) match the deployment's `.env` before anything logs in.
 *
 * - service accounts: ingest (scope `ingest`) and sqal (scope `sqal`), from `INGEST_MQTT_*` / `SQAL_MQTT_*`;
 * - a read-only viewer (dashboards, `mosquitto_sub`) from `VIEWER_MQTT_*`;
 * - the device `esp-fleet check` probes with (`CHECK_PROBE_DEVICE`, `CHECK_PROBE_PASSWORD`);
 * - one `device` credential per emulated device — the ids `esp-fleet emulate` derives from
 *   `EMULATOR_DEVICES/KINDS/SITES` — with the password `EMULATOR_PASSWORD_PATTERN` gives it.
 *
 * - optionally (`GRAFANA_DB_USER` + `GRAFANA_DB_PASSWORD`) a login role for Grafana that can read only the
 *   `dashboard` schema: views over fridge readings and the fridge diagnosis (the fleet's time series live in
 *   TimescaleDB, not in Prometheus — a per-device gauge would be the wrong tool).
 *
 * Idempotent: an account whose role, scopes and password already match is left alone; a missing, revoked or
 * different one is (re)written with the `.env` password — `.env` is the source of truth, so changing a
 * password there and re-running `docker compose up` rotates it. It uses the broker's credential library,
 * because `esp-fleet provision create` generates passwords and cannot take them from the environment.
 *
 * Run: `node --import tsx deploy/provision/ensure-credentials.ts` (what the compose service does).
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { env, loadConfig } from "@esp-fleet/common/config";
import { ConfigError, errorMessage } from "@esp-fleet/common/errors";
import { createLogger, type Logger } from "@esp-fleet/common/logger";
import { DbCredentialStore } from "@esp-fleet/broker/credential-db-store";
import type { CredentialRecord, CredentialStore, Role, ServiceScope } from "@esp-fleet/broker/credentials";
import { hashPassword, verifyPassword } from "@esp-fleet/broker/password";
import { migrate, openDb, type Queryable } from "@esp-fleet/db";
import { fleetSpecs } from "@esp-fleet/device-emulator/fleet";
import { DEVICE_KINDS, type DeviceKind } from "@esp-fleet/schemas";

export const ProvisionEnvSchema = z.object({
  DATABASE_URL: env.url("PostgreSQL holding the broker's `credentials` table (required)"),
  INGEST_MQTT_USERNAME: env.string("ingest", "ingest's service account"),
  INGEST_MQTT_PASSWORD: env.optionalString("its password; unset = the account is not provisioned"),
  SQAL_MQTT_USERNAME: env.string("sqal", "sqal's service account"),
  SQAL_MQTT_PASSWORD: env.optionalString("its password; unset = the account is not provisioned"),
  VIEWER_MQTT_USERNAME: env.string("viewer", "read-only viewer account (dashboards, mosquitto_sub)"),
  VIEWER_MQTT_PASSWORD: env.optionalString("its password; unset = no viewer account"),
  EMULATOR_DEVICES: env.int(0, 0, 100_000, "emulated devices to provision (the emulator's --devices)"),
  EMULATOR_KINDS: env.string("sqal,fridge,gavage", "their kinds (the emulator's --kind)"),
  EMULATOR_SITES: env.string("LL,LS,MT", "their sites (the emulator's --site)"),
  EMULATOR_PASSWORD_PATTERN: env.optionalString("device password pattern, `{dev}` = device id (the emulator's)"),
  CHECK_PROBE_DEVICE: env.string("CHECK_PROBE", "device id `esp-fleet check` publishes its probe reading as"),
  CHECK_PROBE_PASSWORD: env.optionalString(
    "its password; unset = no probe device (then `esp-fleet check` cannot test ingest end to end)",
  ),
  GRAFANA_DB_USER: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a lower-case PostgreSQL identifier")
    .default("grafana_reader")
    .describe("read-only database role Grafana logs in with (sees only the `dashboard` schema)"),
  GRAFANA_DB_PASSWORD: env.optionalString("its password; unset = no Grafana role"),
  LOG_LEVEL: env.logLevel(),
});
export type ProvisionEnv = z.infer<typeof ProvisionEnvSchema>;

export interface WantedCredential {
  username: string;
  role: Role;
  scopes: ServiceScope[];
  password: string;
}

/** The accounts the environment asks for. */
export function wantedCredentials(config: Readonly<ProvisionEnv>): WantedCredential[] {
  const wanted: WantedCredential[] = [];
  if (config.INGEST_MQTT_PASSWORD)
    wanted.push({
      username: config.INGEST_MQTT_USERNAME,
      role: "service",
      scopes: ["ingest"],
      password: config.INGEST_MQTT_PASSWORD,
    });
  if (config.SQAL_MQTT_PASSWORD)
    wanted.push({ username: config.SQAL_MQTT_USERNAME, role: "service", scopes: ["sqal"], password: config.SQAL_MQTT_PASSWORD });
  if (config.VIEWER_MQTT_PASSWORD)
    wanted.push({ username: config.VIEWER_MQTT_USERNAME, role: "viewer", scopes: [], password: config.VIEWER_MQTT_PASSWORD });
  if (config.CHECK_PROBE_PASSWORD)
    wanted.push({ username: config.CHECK_PROBE_DEVICE, role: "device", scopes: [], password: config.CHECK_PROBE_PASSWORD });
  if (config.EMULATOR_DEVICES > 0) {
    const pattern = config.EMULATOR_PASSWORD_PATTERN;
    if (!pattern?.includes("{dev}"))
      throw new ConfigError("EMULATOR_PASSWORD_PATTERN must be set and contain {dev} when EMULATOR_DEVICES > 0");
    const list = (s: string) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean);
    const kinds = list(config.EMULATOR_KINDS);
    const unknown = kinds.filter((k) => !(DEVICE_KINDS as readonly string[]).includes(k));
    if (unknown.length) throw new ConfigError(`EMULATOR_KINDS: unknown kind ${unknown.join(", ")} (sqal, fridge, gavage)`);
    for (const spec of fleetSpecs(config.EMULATOR_DEVICES, kinds as DeviceKind[], list(config.EMULATOR_SITES))) {
      wanted.push({ username: spec.dev, role: "device", scopes: [], password: pattern.replaceAll("{dev}", spec.dev) });
    }
  }
  return wanted;
}

export type EnsureOutcome = "created" | "updated" | "unchanged";

/** Make one stored credential match `want`. */
export async function ensureCredential(store: CredentialStore, want: WantedCredential, now = new Date()): Promise<EnsureOutcome> {
  const existing = await store.get(want.username);
  const same =
    existing &&
    !existing.revokedAt &&
    existing.role === want.role &&
    [...existing.scopes].sort().join(",") === [...want.scopes].sort().join(",") &&
    (await verifyPassword(want.password, existing.hash));
  if (same) return "unchanged";
  const record: CredentialRecord = {
    username: want.username,
    role: want.role,
    scopes: want.scopes,
    hash: await hashPassword(want.password),
    createdAt: existing?.createdAt ?? now.toISOString(),
    rotatedAt: existing ? now.toISOString() : null,
    revokedAt: null,
  };
  await store.put(record);
  return existing ? "updated" : "created";
}

/** Ensure every wanted credential, a few at a time (scrypt is deliberately slow). */
export async function ensureAll(
  store: CredentialStore,
  wanted: WantedCredential[],
  log: Logger,
  concurrency = 4,
): Promise<Record<EnsureOutcome, number>> {
  const counts: Record<EnsureOutcome, number> = { created: 0, updated: 0, unchanged: 0 };
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < wanted.length; i = next++) {
      const want = wanted[i]!;
      const outcome = await ensureCredential(store, want);
      counts[outcome]++;
      if (want.role !== "device" && outcome !== "unchanged")
        log.info({ username: want.username, role: want.role, outcome }, "credential");
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, wanted.length) }, worker));
  return counts;
}

/**
 * The `dashboard` schema Grafana reads: plain views (they run with their owner's rights, so the reader role
 * needs no access to the tables themselves — not to `credentials`, not to anything else).
 */
export const DASHBOARD_VIEWS_SQL = `
CREATE SCHEMA IF NOT EXISTS dashboard;
-- Cabinet temperature of every fridge; the faulty-sensor sentinel (-999) is left out so it cannot flatten the axis.
CREATE OR REPLACE VIEW dashboard.fridge_temperatures AS
  SELECT ts AS time, dev, t AS temperature FROM fridge_readings WHERE t > -100;
-- The current diagnosis of every fridge whose latest diagnosis event is not a clearance.
CREATE OR REPLACE VIEW dashboard.active_faults AS
  SELECT dev, site, fault, at AS since, confidence
  FROM (SELECT DISTINCT ON (dev) dev, site, type, fault, at, confidence FROM sqal_diagnosis_events ORDER BY dev, at DESC) latest
  WHERE type <> 'cleared';
`;

const sqlLiteral = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** Create or update Grafana's read-only role and the views it reads. */
export async function ensureDashboardReader(db: Queryable, user: string, password: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(user))
    throw new ConfigError(`GRAFANA_DB_USER=${JSON.stringify(user)}: not a plain identifier`);
  await db.exec(DASHBOARD_VIEWS_SQL);
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1", [user]);
  // DDL takes no bind parameters: the name is checked above, the password quoted as a literal.
  await db.exec(`${rows[0]?.n ? "ALTER" : "CREATE"} ROLE ${user} LOGIN PASSWORD ${sqlLiteral(password)}`);
  await db.exec(`GRANT USAGE ON SCHEMA dashboard TO ${user}; GRANT SELECT ON ALL TABLES IN SCHEMA dashboard TO ${user}`);
  // Grafana only reads; nothing of the application schema.
  await db.exec(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${user}`);
}

/** Migrate, then ensure every credential the environment asks for. */
export async function provisionCredentials(
  config: Readonly<ProvisionEnv>,
  log: Logger,
): Promise<Record<EnsureOutcome, number> & { devices: number }> {
  if (!config.DATABASE_URL) throw new ConfigError("DATABASE_URL is required: the credentials live in the database");
  const wanted = wantedCredentials(config);
  const db = await openDb({ databaseUrl: config.DATABASE_URL, dataDir: "/tmp", logger: log });
  // The schema first (the same versioned migrations every service applies, under the same advisory lock), so
  // the credentials table is the migrated one and the services find the database ready.
  try {
    await migrate(db, { logger: log });
  } catch (e) {
    await db.close();
    throw e;
  }
  const store = new DbCredentialStore(db, { closeDb: true });
  try {
    if (config.GRAFANA_DB_PASSWORD) {
      await ensureDashboardReader(db, config.GRAFANA_DB_USER, config.GRAFANA_DB_PASSWORD);
      log.info({ role: config.GRAFANA_DB_USER }, "grafana read-only role and dashboard views ready");
    }
    const counts = await ensureAll(store, wanted, log);
    const result = { ...counts, devices: wanted.filter((w) => w.role === "device").length };
    log.info(result, "credentials provisioned");
    return result;
  } finally {
    await store.close();
  }
}

export async function main(source: Record<string, string | undefined> = process.env): Promise<number> {
  const config = loadConfig(ProvisionEnvSchema, source);
  await provisionCredentials(config, createLogger("provision", { level: config.LOG_LEVEL }));
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`provision: ${e instanceof ConfigError ? e.message : errorMessage(e)}\n`);
      process.exitCode = e instanceof ConfigError ? 78 : 1;
    },
  );
}
