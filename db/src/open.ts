import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { from as copyFromStream } from "pg-copy-streams";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { Logger } from "@esp-fleet/common/logger";
import { UnavailableError, errorMessage } from "@esp-fleet/common/errors";
import type { Db, Queryable, QueryResult } from "./types.ts";

export interface OpenDbOptions {
  /** A PostgreSQL server (`postgres://…`). Without it, the embedded PGlite database in `dataDir` serves. */
  databaseUrl?: string | undefined;
  /** Where the embedded database lives (`${dataDir}/pglite`); created when missing. */
  dataDir: string;
  logger: Logger;
  /** Maximum pool size on a server (default 10). */
  poolMax?: number;
  /** `auto` (default): use TimescaleDB when the server has the extension; `off`: never. */
  timescale?: "auto" | "off";
}

/** Open the database: a `pg` pool when a URL is given, else PGlite persisted under `dataDir`. */
export async function openDb(options: OpenDbOptions): Promise<Db> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPglite(options);
}

// ------------------------------------------------------------------------------------------------ pg

// int8 (count(*), bigint columns) as numbers on both implementations: PGlite already does; every value
// stored here (boot counters, sequence numbers, ids) is far below 2^53.
const INT8_OID = 20;
const pgTypes = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

function pgQueryable(client: pg.PoolClient | pg.Pool): Queryable {
  return {
    async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const r = await client.query(sql, params as unknown[] | undefined);
      return { rows: r.rows as R[], rowCount: r.rowCount ?? r.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
    copyFrom(sql: string, data: string): Promise<number> {
      return pgCopyOn(client, sql, data);
    },
    copyFromBinary(sql: string, data: Uint8Array): Promise<number> {
      return pgCopyOn(client, sql, data);
    },
  };
}

/** COPY on a checked-out client, or on a client borrowed from the pool for just this statement. */
async function pgCopyOn(client: pg.PoolClient | pg.Pool, sql: string, data: string | Uint8Array): Promise<number> {
  if ("release" in client) return pgCopy(client, sql, data);
  const c = await client.connect();
  let broken = false;
  const onError = () => (broken = true);
  c.on("error", onError);
  try {
    return await pgCopy(c, sql, data);
  } finally {
    c.off("error", onError);
    c.release(broken ? true : undefined);
  }
}

async function pgCopy(client: pg.PoolClient, sql: string, data: string | Uint8Array): Promise<number> {
  const stream = client.query(copyFromStream(sql));
  await new Promise<void>((resolve, reject) => {
    stream.on("error", reject);
    stream.on("finish", () => resolve());
    stream.end(
      typeof data === "string" || Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    );
  });
  return Number(stream.rowCount ?? 0);
}

async function openPostgres(url: string, options: OpenDbOptions): Promise<Db> {
  const log = options.logger.child({ component: "db" });
  const pool = new pg.Pool({ connectionString: url, max: options.poolMax ?? 10, types: pgTypes, connectionTimeoutMillis: 5000 });
  // An idle client whose server went away emits here; without a listener it would crash the process.
  pool.on("error", (err) => log.warn({ err }, "idle PostgreSQL connection lost"));
  let timescale = false;
  try {
    if (options.timescale !== "off") {
      const r = await pool.query("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'");
      timescale = (r.rowCount ?? 0) > 0;
    } else {
      await pool.query("SELECT 1");
    }
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw new UnavailableError(`cannot reach PostgreSQL at ${redact(url)}: ${errorMessage(e)}`, {}, { cause: e });
  }
  log.info({ url: redact(url), timescale }, "connected to PostgreSQL");
  const base = pgQueryable(pool);
  return {
    kind: "postgres",
    timescale,
    ...base,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken = false;
      // A checked-out client whose server goes away emits `error` (outside any query): without a
      // listener that is an uncaught exception. The failing query rejects on its own.
      const onError = (err: Error) => {
        broken = true;
        log.warn({ err }, "PostgreSQL connection lost during a transaction");
      };
      client.on("error", onError);
      try {
        await client.query("BEGIN");
        const result = await fn(pgQueryable(client));
        await client.query("COMMIT");
        return result;
      } catch (e) {
        try {
          await client.query("ROLLBACK");
        } catch {
          broken = true;
        }
        throw e;
      } finally {
        client.off("error", onError);
        // A connection whose ROLLBACK failed is dead or confused: destroy it rather than reuse it.
        client.release(broken ? true : undefined);
      }
    },
    async withConnection<T>(fn: (conn: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken = false;
      const onError = (err: Error) => {
        broken = true;
        log.warn({ err }, "PostgreSQL connection lost");
      };
      client.on("error", onError);
      try {
        return await fn(pgQueryable(client));
      } finally {
        client.off("error", onError);
        client.release(broken ? true : undefined);
      }
    },
    async ping(): Promise<void> {
      await pool.query("SELECT 1");
    },
    async close(): Promise<void> {
      await pool.end();
    },
  };
}

/** The URL without its password, for logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

// -------------------------------------------------------------------------------------------- PGlite

type PgliteLike = PGlite | Transaction;

function pgliteQueryable(db: PgliteLike): Queryable {
  return {
    async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const r = await db.query<R>(sql, params as unknown[] | undefined);
      return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await db.exec(sql);
    },
    copyFrom(sql: string, data: string): Promise<number> {
      return pgliteCopy(db, sql, new Blob([data]));
    },
    copyFromBinary(sql: string, data: Uint8Array): Promise<number> {
      return pgliteCopy(db, sql, new Blob([data as Uint8Array<ArrayBuffer>]));
    },
  };
}

/** PGlite has no COPY sub-protocol: the data goes in as a Blob that the statement reads from `/dev/blob`. */
async function pgliteCopy(db: PgliteLike, sql: string, blob: Blob): Promise<number> {
  const r = await db.query(sql.replace(/\bSTDIN\b/i, "'/dev/blob'"), [], { blob });
  return r.affectedRows ?? 0;
}

/**
 * The embedded server is one session in this process, so PostgreSQL's defaults for a shared server
 * (128 MB of shared buffers) only cost memory: 16 MB keeps the all-in-one well under its 400 MB budget.
 */
const PGLITE_CONF = "shared_buffers = 16MB\nwork_mem = 4MB\nmaintenance_work_mem = 16MB\n";

/**
 * Create a new PGlite data directory (initdb) in a short-lived child process. initdb grows the
 * WebAssembly memory to ~600 MB and WebAssembly memory never shrinks, so doing it in-process would leave
 * the all-in-one at ~800 MB resident for its whole life; the child's memory goes back to the OS.
 */
async function initPgliteInChild(dir: string): Promise<void> {
  const script =
    "const { PGlite } = await import(process.argv[1]); const db = await PGlite.create(process.argv[2]); await db.close();";
  await promisify(execFile)(
    process.execPath,
    ["--input-type=module", "-e", script, import.meta.resolve("@electric-sql/pglite"), dir],
    {
      timeout: 120_000,
    },
  );
}

async function openPglite(options: OpenDbOptions): Promise<Db> {
  const log = options.logger.child({ component: "db" });
  const dir = join(options.dataDir, "pglite");
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  let db: PGlite;
  try {
    if (!existsSync(join(dir, "PG_VERSION"))) await initPgliteInChild(dir);
    db = await PGlite.create(dir, { postgresqlconf: PGLITE_CONF });
  } catch (e) {
    throw new UnavailableError(`cannot open the embedded database in ${dir}: ${errorMessage(e)}`, { dir }, { cause: e });
  }
  log.info({ dir, ms: Math.round(performance.now() - t0) }, "opened embedded PGlite database");
  const base = pgliteQueryable(db);
  let closed = false;
  return {
    kind: "pglite",
    timescale: false,
    ...base,
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(pgliteQueryable(tx)));
    },
    // PGlite is one connection: statements are already serialised.
    withConnection<T>(fn: (conn: Queryable) => Promise<T>): Promise<T> {
      return fn(base);
    },
    async ping(): Promise<void> {
      if (closed) throw new UnavailableError("embedded database is closed");
      await db.query("SELECT 1");
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}
