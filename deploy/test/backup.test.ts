/**
 * deploy/backup/backup.sh (the compose `backup` profile) run for real: against the test PostgreSQL with the
 * esp-fleet schema migrated in, with this machine's pg_dump — the same script the compose service runs with
 * the TimescaleDB image's pg_dump.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@esp-fleet/common/logger";
import { createTestDatabase, needsPostgres, testDatabaseUrl } from "@esp-fleet/common/testing";
import { migrate, openDb } from "@esp-fleet/db";

const run = promisify(execFile);
const script = new URL("../backup/backup.sh", import.meta.url).pathname;
const hasPgDump = await run("pg_dump", ["--version"]).then(
  () => true,
  () => false,
);
const skip = !testDatabaseUrl || (!hasPgDump && process.env.CI !== "true");

describe.skipIf(skip)(`backup.sh${needsPostgres}${hasPgDump ? "" : " (skipped: needs the pg_dump binary)"}`, () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let dir: string;
  let libpq: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase("backup");
    const db = await openDb({
      databaseUrl: database.url,
      dataDir: tmpdir(),
      logger: createLogger("backup-test", { level: "silent" }),
      timescale: "off",
    });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
    dir = await mkdtemp(join(tmpdir(), "esp-fleet-backup-"));
    const url = new URL(database.url);
    libpq = {
      PGHOST: url.hostname,
      PGPORT: url.port || "5432",
      PGUSER: decodeURIComponent(url.username),
      PGPASSWORD: decodeURIComponent(url.password),
      PGDATABASE: database.name,
    };
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await database?.drop();
  });

  const backup = (env: Record<string, string>) =>
    run("sh", [script], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...libpq, BACKUP_DIR: dir, BACKUP_ONCE: "1", ...env },
    });

  it("writes a restorable custom-format dump of the esp-fleet schema, and prunes all but the newest BACKUP_KEEP", async () => {
    // Two older dumps already there; with BACKUP_KEEP=2 the oldest goes.
    await writeFile(join(dir, "esp-fleet-20200101T000000Z.dump"), "old");
    await writeFile(join(dir, "esp-fleet-20210101T000000Z.dump"), "old");
    await writeFile(join(dir, "unrelated.txt"), "kept");
    const { stdout } = await backup({ BACKUP_KEEP: "2" });
    expect(stdout).toMatch(/wrote .*esp-fleet-\d{8}T\d{6}Z\.dump/);
    expect(stdout).toContain("pruned esp-fleet-20200101T000000Z.dump");

    const files = (await readdir(dir)).sort();
    expect(files).toHaveLength(3);
    expect(files).toContain("esp-fleet-20210101T000000Z.dump");
    expect(files).toContain("unrelated.txt");
    const fresh = files.find((f) => /^esp-fleet-\d{8}T\d{6}Z\.dump$/.test(f) && !f.startsWith("esp-fleet-2021"))!;
    // pg_restore reads the archive back: the core tables are in it.
    const { stdout: toc } = await run("pg_restore", ["--list", join(dir, fresh)]);
    for (const table of ["devices", "fridge_readings", "sqal_samples", "dead_letters"])
      expect(toc).toMatch(new RegExp(`TABLE public ${table}\\b`));
  });

  it("fails (non-zero, no partial file left, earlier dumps kept) when the database refuses", async () => {
    const before = (await readdir(dir)).sort();
    const err = await backup({ PGPASSWORD: "definitely-wrong", PGDATABASE: "no_such_database_here" }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/failed; keeping the previous dumps/);
    expect((await readdir(dir)).sort()).toEqual(before);
  });

  it("refuses a bad setting before touching anything", async () => {
    const err = await backup({ BACKUP_KEEP: "0" }).then(
      () => undefined,
      (e: { code?: number; stdout?: string }) => e,
    );
    expect(err?.code).toBe(78);
  });
});
