import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Logger } from "@esp-fleet/common/logger";
import { ConfigError, FleetError } from "@esp-fleet/common/errors";
import type { Db, Queryable } from "./types.ts";

/**
 * Versioned SQL migrations (DESIGN §5). Files are `NNN_name.sql`, applied in numeric order, each in its
 * own transaction, recorded in `schema_migrations`. A companion `NNN_name.timescale.sql` is applied right
 * after its base file only when the database has TimescaleDB (hypertables, compression, retention,
 * continuous aggregates); the base file alone must give a working plain-PostgreSQL schema.
 * A file whose first line is `-- migrate:no-transaction` runs outside a transaction (TimescaleDB refuses
 * to create a continuous aggregate inside one).
 *
 * Number ranges agreed by the team: 001–049 ingest/core tables, 050–099 sqal (lots, inspections,
 * grades, diagnosis), 100–109 broker (credentials).
 *
 * Two processes starting at once are serialised by a session-level advisory lock.
 */
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL("../migrations", import.meta.url));

const FILE_RE = /^(\d{3})_([a-z0-9_]+)(\.timescale)?\.sql$/;
const MIGRATION_LOCK = 0x657370666c74; // "espflt"
const NO_TX = /^\s*--\s*migrate:no-transaction\b/;

export interface MigrationFile {
  version: number;
  name: string;
  variant: "base" | "timescale";
  path: string;
  sql: string;
  checksum: string;
  transactional: boolean;
}

export interface MigrateOptions {
  /** Folders holding migration files (default: `db/migrations`). Versions must be unique across them. */
  dirs?: string[];
  logger?: Logger;
}

export interface MigrateResult {
  applied: string[];
  skipped: number;
}

/** Read and order the migration files of `dirs`. Throws ConfigError on a duplicate version or a stray name. */
export async function loadMigrations(dirs: string[] = [DEFAULT_MIGRATIONS_DIR]): Promise<MigrationFile[]> {
  const files: MigrationFile[] = [];
  for (const dir of dirs) {
    for (const entry of (await readdir(dir)).sort()) {
      if (!entry.endsWith(".sql")) continue;
      const m = FILE_RE.exec(entry);
      if (!m) throw new ConfigError(`migration file ${join(dir, entry)} must be named NNN_name.sql or NNN_name.timescale.sql`);
      const path = join(dir, entry);
      const sql = await readFile(path, "utf8");
      files.push({
        version: Number(m[1]),
        name: m[2] ?? "",
        variant: m[3] ? "timescale" : "base",
        path,
        sql,
        checksum: createHash("sha256").update(sql).digest("hex").slice(0, 16),
        transactional: !NO_TX.test(sql),
      });
    }
  }
  files.sort((a, b) => a.version - b.version || (a.variant === "base" ? -1 : 1));
  const seen = new Map<string, string>();
  for (const f of files) {
    const key = `${f.version}:${f.variant}`;
    const other = seen.get(key);
    if (other)
      throw new ConfigError(`two migrations share version ${String(f.version).padStart(3, "0")}: ${other} and ${f.path}`);
    seen.set(key, f.path);
  }
  for (const f of files) {
    if (f.variant === "timescale" && !seen.has(`${f.version}:base`))
      throw new ConfigError(`${f.path} has no base migration ${String(f.version).padStart(3, "0")}_${f.name}.sql`);
  }
  return files;
}

/** Apply every pending migration. Safe to call from several processes at once. */
export async function migrate(db: Db, options: MigrateOptions = {}): Promise<MigrateResult> {
  const files = await loadMigrations(options.dirs);
  const log = options.logger?.child({ component: "migrate" });
  return db.withConnection(async (conn) => {
    await conn.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    try {
      await conn.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer NOT NULL,
        variant text NOT NULL,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (version, variant)
      )`);
      const done = await conn.query<{ version: number; variant: string; checksum: string; name: string }>(
        "SELECT version, variant, checksum, name FROM schema_migrations",
      );
      const applied = new Map(done.rows.map((r) => [`${r.version}:${r.variant}`, r]));
      const result: MigrateResult = { applied: [], skipped: 0 };
      for (const f of files) {
        if (f.variant === "timescale" && !db.timescale) continue;
        const prior = applied.get(`${f.version}:${f.variant}`);
        if (prior) {
          if (prior.checksum !== f.checksum)
            log?.warn({ file: f.path, recorded: prior.checksum, now: f.checksum }, "applied migration file has changed since");
          result.skipped++;
          continue;
        }
        const t0 = performance.now();
        await applyOne(conn, f);
        const label = `${String(f.version).padStart(3, "0")}_${f.name}${f.variant === "timescale" ? ".timescale" : ""}`;
        result.applied.push(label);
        log?.info({ migration: label, ms: Math.round(performance.now() - t0) }, "migration applied");
      }
      return result;
    } finally {
      await conn.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    }
  });
}

async function applyOne(conn: Queryable, f: MigrationFile): Promise<void> {
  const record = () =>
    conn.query("INSERT INTO schema_migrations (version, variant, name, checksum) VALUES ($1, $2, $3, $4)", [
      f.version,
      f.variant,
      f.name,
      f.checksum,
    ]);
  if (!f.transactional) {
    // One statement at a time: PostgreSQL runs a multi-statement query string as one implicit transaction.
    for (const statement of splitStatements(f.sql)) await conn.exec(statement);
    await record();
    return;
  }
  await conn.exec("BEGIN");
  try {
    await conn.exec(f.sql);
    await record();
    await conn.exec("COMMIT");
  } catch (e) {
    await conn.exec("ROLLBACK").catch(() => undefined);
    throw new FleetError(
      "INTERNAL",
      `migration ${f.path} failed: ${e instanceof Error ? e.message : String(e)}`,
      { file: f.path },
      { cause: e },
    );
  }
}

/** Split a script on `;` at the end of a line. Enough for migration files (no `$$` bodies in no-transaction files). */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;[ \t]*(?:\r?\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.split("\n").some((line) => line.trim() !== "" && !line.trim().startsWith("--")));
}
