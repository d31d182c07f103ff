/**
 * A PRIVATE PostgreSQL server for tests that stop and restart the database (the shared server at
 * TEST_DATABASE_URL must never be stopped). Runs the Debian PostgreSQL 15 binaries as the `postgres`
 * user (when the test runs as root) on a free port, with its socket and data in a temp dir.
 */
import { execFile } from "node:child_process";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./testing.ts";

const run = promisify(execFile);

export const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

/** Why private-PostgreSQL tests cannot run here, or "" when they can. */
export const needsPrivatePostgres = existsSync(join(PG_BIN, "initdb"))
  ? ""
  : ` (skipped: PostgreSQL server binaries not found in ${PG_BIN}; set PG_BIN)`;

export interface PrivatePostgres {
  url: string;
  port: number;
  dir: string;
  /** `pg_ctl stop -m fast` — clients see their connections terminated. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stop (if running) and remove the data directory. */
  destroy(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = await mkdtemp(join(tmpdir(), "pgpriv-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  const as = async (cmd: string, args: string[]) => {
    if (asRoot) return run("runuser", ["-u", "postgres", "--", join(PG_BIN, cmd), ...args]);
    return run(join(PG_BIN, cmd), args);
  };
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await as("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const port = await freePort();
  let running = false;
  const pg = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async start() {
      await as("pg_ctl", [
        "-D",
        data,
        "-l",
        join(dir, "log"),
        "-w",
        "-t",
        "30",
        "-o",
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=32MB`,
        "start",
      ]);
      running = true;
    },
    async stop() {
      await as("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
      running = false;
    },
    async destroy() {
      if (running) await pg.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}
