import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@esp-fleet/common/logger";
import { createTestDatabase, needsPostgres, testDatabaseUrl } from "@esp-fleet/common/testing";
import { DEFAULT_MIGRATIONS_DIR, migrate, openDb, type Db } from "../src/index.ts";

/** 002_sqal_frame_bytea converts rows stored as integer arrays into the wire's bytes, losslessly. */
const logger = silentLogger();
const dist = Array.from({ length: 64 }, (_, i) => (i * 1021) % 65536); // spans both bytes
const amp = Array.from({ length: 64 }, (_, i) => 4095 - i);
const status = Array.from({ length: 64 }, (_, i) => (i % 3 === 0 ? 5 : 255));
const refl = Array.from({ length: 64 }, (_, i) => i);

function suite(name: string, open: () => Promise<{ db: Db; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let ctx: Awaited<ReturnType<typeof open>>;
    let only001: string;
    beforeAll(async () => {
      ctx = await open();
      only001 = await mkdtemp(join(tmpdir(), "mig001-"));
      await copyFile(join(DEFAULT_MIGRATIONS_DIR, "001_core.sql"), join(only001, "001_core.sql"));
    });
    afterAll(async () => {
      await ctx.db.close();
      await ctx.cleanup();
      await rm(only001, { recursive: true, force: true });
    });

    it("turns stored integer arrays into little-endian bytes that read back as the same arrays", async () => {
      await migrate(ctx.db, { dirs: [only001], logger });
      await ctx.db.query(
        `INSERT INTO sqal_samples (dev, boot, seq, ts, received_at, sample, tof_dist, tof_status, tof_refl, tof_amp,
                                   tof_h, spec_counts, spec_gain, spec_atime, spec_astep)
         VALUES ('S1', 1, 1, now(), now(), 's', $1, $2, $3, $4, 100, '{1,2,3,4,5,6,7,8,9,10}', 3, 29, 599)`,
        [dist, status, refl, amp],
      );
      const r = await migrate(ctx.db, { logger });
      expect(r.applied).toContain("002_sqal_frame_bytea");
      const raw = await ctx.db.query<{ tof_dist: Uint8Array; tof_status: Uint8Array }>(
        "SELECT tof_dist, tof_status FROM sqal_samples",
      );
      expect([...raw.rows[0]!.tof_dist]).toEqual(dist.flatMap((v) => [v & 0xff, v >> 8]));
      expect([...raw.rows[0]!.tof_status]).toEqual(status);
      const back = await ctx.db.query("SELECT tof_dist, tof_status, tof_refl, tof_amp FROM sqal_samples_arrays");
      expect(back.rows[0]).toEqual({ tof_dist: dist, tof_status: status, tof_refl: refl, tof_amp: amp });
      const empty = await ctx.db.query("SELECT esp_u16le(''::bytea) AS a, esp_u8(''::bytea) AS b, esp_u16le_bytes('{}') AS c");
      expect(empty.rows[0]).toMatchObject({ a: [], b: [] });
    });
  });
}

suite("PGlite", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "db-mig-"));
  return { db: await openDb({ dataDir, logger }), cleanup: () => rm(dataDir, { recursive: true, force: true }) };
});

describe.skipIf(!testDatabaseUrl)(`PostgreSQL${needsPostgres}`, () => {
  suite("server", async () => {
    const t = await createTestDatabase("dbmig");
    return { db: await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger }), cleanup: () => t.drop() };
  });
});
