import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@esp-fleet/common/logger";
import { createTestDatabase, needsPostgres, testDatabaseUrl } from "@esp-fleet/common/testing";
import { loadMigrations, migrate, openDb, splitStatements, type Db } from "../src/index.ts";

const logger = silentLogger();

describe("migrations", () => {
  it("load in order, base before its timescale companion", async () => {
    const files = await loadMigrations();
    expect(files[0]).toMatchObject({ version: 1, name: "core", variant: "base", transactional: true });
    expect(files[1]).toMatchObject({ version: 1, name: "core", variant: "timescale", transactional: false });
  });
  it("split no-transaction scripts into statements", () => {
    expect(splitStatements("-- c\nSELECT 1;\n\n-- only a comment\nSELECT 2;\nSELECT 3")).toEqual([
      "-- c\nSELECT 1",
      "-- only a comment\nSELECT 2",
      "SELECT 3",
    ]);
  });
});

function suite(name: string, open: () => Promise<{ db: Db; reopen: () => Promise<Db>; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let ctx: Awaited<ReturnType<typeof open>>;
    beforeAll(async () => {
      ctx = await open();
    });
    afterAll(async () => {
      await ctx.db.close();
      await ctx.cleanup();
    });

    it("migrates once, records the versions, and is idempotent", async () => {
      const first = await migrate(ctx.db, { logger });
      expect(first.applied).toContain("001_core");
      const again = await migrate(ctx.db, { logger });
      expect(again.applied).toEqual([]);
      const r = await ctx.db.query<{ version: number }>(
        "SELECT version FROM schema_migrations WHERE variant = 'base' ORDER BY version",
      );
      expect(r.rows.map((x) => x.version)).toContain(1);
      // 003: the registry keeps room on its pages for heap-only updates of last_seen
      const opts = await ctx.db.query<{ reloptions: string[] | null }>(
        "SELECT reloptions FROM pg_class WHERE relname = 'devices'",
      );
      expect(opts.rows[0]?.reloptions).toContain("fillfactor=50");
      // 005: the tables written at rate are analyzed per million changed rows, not at every autovacuum visit
      const analyzed = await ctx.db.query<{ relname: string; reloptions: string[] | null }>(
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('fridge_readings', 'sqal_samples', 'devices', 'events', 'device_status') ORDER BY relname",
      );
      expect(analyzed.rows.map((x) => [x.relname, x.reloptions?.includes("autovacuum_analyze_threshold=1000000")])).toEqual([
        ["device_status", true],
        ["devices", true],
        ["events", true],
        ["fridge_readings", true],
        ["sqal_samples", true],
      ]);
    });

    it("inserts idempotently, copies, and rolls back a failed transaction", async () => {
      const ins =
        "INSERT INTO events (dev, boot, seq, ts, received_at, kind, site, type, sev) VALUES ($1,$2,$3,$4,$5,'fridge','LL','alarm','info') ON CONFLICT DO NOTHING";
      const now = new Date();
      expect((await ctx.db.query(ins, ["d1", 1, 1, now, now])).rowCount).toBe(1);
      expect((await ctx.db.query(ins, ["d1", 1, 1, now, now])).rowCount).toBe(0);
      await expect(
        ctx.db.transaction(async (tx) => {
          await tx.query(ins, ["d1", 1, 2, now, now]);
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      const n = await ctx.db.query<{ n: number }>("SELECT count(*) AS n FROM events");
      expect(n.rows[0]?.n).toBe(1);
      const copied = await ctx.db.transaction((tx) =>
        tx.copyFrom(
          "COPY dead_letters (received_at, topic, payload, stage, reason) FROM STDIN",
          `${now.toISOString()}\ta/b\t\\\\x00ff\tcbor\tbad\\tbytes\n`,
        ),
      );
      expect(copied).toBe(1);
      const dl = await ctx.db.query<{ payload: Uint8Array; reason: string }>("SELECT payload, reason FROM dead_letters");
      expect([...dl.rows[0]!.payload]).toEqual([0, 255]);
      expect(dl.rows[0]!.reason).toBe("bad\tbytes");
    });

    it("keeps data across a reopen", async () => {
      await ctx.db.close();
      ctx.db = await ctx.reopen();
      const n = await ctx.db.query<{ n: number }>("SELECT count(*) AS n FROM events");
      expect(n.rows[0]?.n).toBe(1);
      expect((await migrate(ctx.db, { logger })).applied).toEqual([]);
    });
  });
}

suite("PGlite", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "db-test-"));
  const reopen = () => openDb({ dataDir, logger });
  return { db: await reopen(), reopen, cleanup: () => rm(dataDir, { recursive: true, force: true }) };
});

describe.skipIf(!testDatabaseUrl)(`PostgreSQL${needsPostgres}`, () => {
  suite("server", async () => {
    const t = await createTestDatabase("dbtest");
    const reopen = () => openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger });
    return { db: await reopen(), reopen, cleanup: () => t.drop() };
  });

  it("two processes migrating at once apply each migration once", async () => {
    const t = await createTestDatabase("dbtest");
    const a = await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger });
    const b = await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger });
    try {
      const [ra, rb] = await Promise.all([migrate(a, { logger }), migrate(b, { logger })]);
      expect([...ra.applied, ...rb.applied].filter((x) => x === "001_core")).toHaveLength(1);
    } finally {
      await a.close();
      await b.close();
      await t.drop();
    }
  });
});
