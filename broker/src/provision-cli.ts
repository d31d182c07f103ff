import { join } from "node:path";
import { Command, Option } from "commander";
import { loadConfig, env } from "@esp-fleet/common/config";
import { FleetError } from "@esp-fleet/common/errors";
import { silentLogger } from "@esp-fleet/common/logger";
import type { Db } from "@esp-fleet/db";
import { z } from "zod";
import { FileCredentialStore, ROLES, SERVICE_SCOPES, type CredentialStore, type Role, type ServiceScope } from "./credentials.ts";
import { DbCredentialStore } from "./credential-db-store.ts";
import { createCredential, listCredentials, revokeCredential, rotateCredential } from "./provision.ts";

/** The environment `esp-fleet provision` reads: the same store selection as the broker. */
export const ProvisionConfigSchema = z.object({
  DATA_DIR: env.string("./data", "directory holding credentials.json"),
  MQTT_CREDENTIALS_FILE: env.optionalString("credentials file; default ${DATA_DIR}/credentials.json"),
  DATABASE_URL: env.url("PostgreSQL URL; when set, credentials are managed in its `credentials` table"),
});

async function openStore(opts: { file?: string }, envSource: Record<string, string | undefined>): Promise<CredentialStore> {
  const config = loadConfig(ProvisionConfigSchema, envSource);
  if (config.DATABASE_URL && !opts.file) {
    const { openDb } = await import("@esp-fleet/db");
    const db: Db = await openDb({
      databaseUrl: config.DATABASE_URL,
      dataDir: config.DATA_DIR,
      logger: silentLogger(),
      poolMax: 1,
    });
    return new DbCredentialStore(db, { closeDb: true });
  }
  return new FileCredentialStore(opts.file ?? config.MQTT_CREDENTIALS_FILE ?? join(config.DATA_DIR, "credentials.json"));
}

/**
 * `esp-fleet provision create|rotate|revoke|list|fleet`. A generated password is printed once, on stdout, and
 * never stored in clear. Output is JSON with `--json`, a short human line otherwise.
 */
export async function run(argv: string[], envSource: Record<string, string | undefined> = process.env): Promise<number> {
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const program = new Command("esp-fleet provision")
    .description(
      "create / rotate / revoke / list broker credentials (in the database when DATABASE_URL is set, else the credentials file)",
    )
    .option("--file <path>", "credentials file (overrides DATA_DIR / MQTT_CREDENTIALS_FILE / DATABASE_URL)")
    .option("--json", "machine-readable output")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const withStore = async (fn: (store: CredentialStore, json: boolean) => Promise<void>) => {
    const g = program.opts<{ file?: string; json?: boolean }>();
    const store = await openStore({ ...(g.file ? { file: g.file } : {}) }, envSource);
    try {
      await fn(store, !!g.json);
    } finally {
      await store.close();
    }
  };
  program
    .command("create <username>")
    .description("create a credential and print its generated password once")
    .addOption(new Option("--role <role>", "device, service or viewer").choices(ROLES).default("device"))
    .option("--scope <scope...>", `service scopes: ${SERVICE_SCOPES.join(", ")}`)
    .action(async (username: string, o: { role: Role; scope?: string[] }) => {
      const bad = (o.scope ?? []).filter((s) => !(SERVICE_SCOPES as readonly string[]).includes(s));
      if (bad.length) throw new FleetError("BAD_INPUT", `unknown scope ${bad.join(", ")}; expected ${SERVICE_SCOPES.join(", ")}`);
      await withStore(async (store, json) => {
        const r = await createCredential(store, { username, role: o.role, scopes: (o.scope ?? []) as ServiceScope[] });
        out(
          json
            ? JSON.stringify(r)
            : `created ${username} (${o.role}${r.credential.scopes.length ? `: ${r.credential.scopes.join(",")}` : ""}) password: ${r.password}`,
        );
      });
    });
  program
    .command("rotate <username>")
    .description("replace a credential's password (prints the new one once); un-revokes it")
    .action(async (username: string) =>
      withStore(async (store, json) => {
        const r = await rotateCredential(store, username);
        out(json ? JSON.stringify(r) : `rotated ${username} password: ${r.password}`);
      }),
    );
  program
    .command("revoke <username>")
    .description("refuse this credential from now on (existing sessions end at their next CONNECT)")
    .action(async (username: string) =>
      withStore(async (store, json) => {
        const r = await revokeCredential(store, username);
        out(json ? JSON.stringify(r) : `revoked ${username} at ${r.revokedAt}`);
      }),
    );
  program
    .command("fleet")
    .description(
      "create (or rotate) device credentials for the ids `esp-fleet emulate` generates, and write them to a file for `emulate --credentials`",
    )
    .requiredOption("--devices <n>", "number of devices", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 100_000)
        throw new FleetError("BAD_INPUT", "--devices must be an integer 1…100000");
      return n;
    })
    .option("--kind <list>", "device kinds, comma-separated, as for emulate", "sqal,fridge,gavage")
    .option("--site <list>", "sites, comma-separated, as for emulate", "LL,LS,MT")
    .option("--out <file>", "where to write the id → password map (mode 0600)", "fleet-credentials.json")
    .action(async (o: { devices: number; kind: string; site: string; out: string }) => {
      const { fleetSpecs } = await import("@esp-fleet/device-emulator");
      const { writeFile } = await import("node:fs/promises");
      const split = (v: string) =>
        v
          .split(",")
          .map((x) => x.trim())
          .filter(Boolean);
      let specs;
      try {
        specs = fleetSpecs(o.devices, split(o.kind) as Parameters<typeof fleetSpecs>[1], split(o.site));
      } catch (e) {
        throw new FleetError("BAD_INPUT", (e as Error).message);
      }
      await withStore(async (store, json) => {
        const passwords: Record<string, string> = {};
        let created = 0;
        let rotated = 0;
        // scrypt runs on libuv's thread pool: hash a few at a time.
        for (let i = 0; i < specs.length; i += 8) {
          await Promise.all(
            specs.slice(i, i + 8).map(async ({ dev }) => {
              const existing = await store.get(dev);
              const r = existing
                ? await rotateCredential(store, dev)
                : await createCredential(store, { username: dev, role: "device" });
              if (existing) rotated++;
              else created++;
              passwords[dev] = r.password;
            }),
          );
          if (!json && process.stderr.isTTY) process.stderr.write(`\r${Object.keys(passwords).length}/${specs.length} devices`);
        }
        await writeFile(o.out, `${JSON.stringify(passwords, null, 2)}\n`, { mode: 0o600 });
        if (!json && process.stderr.isTTY) process.stderr.write("\n");
        out(
          json
            ? JSON.stringify({ created, rotated, out: o.out })
            : `${created} created, ${rotated} rotated; passwords in ${o.out}`,
        );
      });
    });
  program
    .command("list")
    .description("list credentials (never their hashes)")
    .action(async () =>
      withStore(async (store, json) => {
        const all = await listCredentials(store);
        if (json) out(JSON.stringify(all));
        else
          for (const c of all)
            out(
              `${c.username.padEnd(24)} ${c.role.padEnd(8)} ${c.scopes.join(",").padEnd(16)} ${c.revokedAt ? `revoked ${c.revokedAt}` : "active"}`,
            );
      }),
    );
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof FleetError) {
      process.stderr.write(`esp-fleet provision: ${e.message}\n`);
      return e.code === "NOT_FOUND" ? 3 : e.code === "CONFLICT" ? 4 : 2;
    }
    const exit = (e as { exitCode?: number }).exitCode;
    if (exit !== undefined) return exit;
    throw e;
  }
  return 0;
}
