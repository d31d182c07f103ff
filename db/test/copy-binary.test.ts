import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@esp-fleet/common/logger";
import { createTestDatabase, needsPostgres, testDatabaseUrl } from "@esp-fleet/common/testing";
import { COPY_BINARY_HEADER, CopyTupleWriter, copyBinaryFile, openDb, type Db } from "../src/index.ts";

const logger = silentLogger();

describe("CopyTupleWriter (bytes)", () => {
  it("writes the PGCOPY signature, field counts, big-endian lengths and NULL as -1", () => {
    expect(Buffer.from(COPY_BINARY_HEADER).subarray(0, 11).toString("latin1")).toBe("PGCOPY\n\xff\r\n\0");
    const t = new CopyTupleWriter(4).tuple(3).int2(-2).null().text("é").take();
    expect([...t]).toEqual([0, 3, 0, 0, 0, 2, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0xc3, 0xa9]);
    const file = copyBinaryFile([t]);
    expect([...file.subarray(-2)]).toEqual([0xff, 0xff]);
    expect(file.length).toBe(19 + t.length + 2);
  });
  it("writes uint16 arrays little-endian whatever the input array type", () => {
    const a = new CopyTupleWriter()
      .tuple(1)
      .byteaUint16LE(new Uint16Array([0x0102, 0xfffe]))
      .take();
    const b = new CopyTupleWriter().tuple(1).byteaUint16LE([0x0102, 0xfffe]).take();
    expect([...a]).toEqual([0, 1, 0, 0, 0, 4, 0x02, 0x01, 0xfe, 0xff]);
    expect(b).toEqual(a);
  });
  it("refuses values that do not fit their column type instead of wrapping them", () => {
    expect(() => new CopyTupleWriter().tuple(1).int2(40_000)).toThrow(RangeError);
    expect(() => new CopyTupleWriter().tuple(1).int4(2 ** 31)).toThrow(RangeError);
    expect(() => new CopyTupleWriter().tuple(1).int8(2 ** 60)).toThrow(RangeError);
    expect(() => new CopyTupleWriter().tuple(1).timestamptz(Number.NaN)).toThrow(RangeError);
  });
});

const DDL = `CREATE TABLE IF NOT EXISTS copy_types (
  id int4, s int2, b int8, r real, d float8, ok boolean, t text, raw bytea, at timestamptz,
  tags text[], nums int4[], small int2[], doc jsonb)`;
const COLS = "id, s, b, r, d, ok, t, raw, at, tags, nums, small, doc";

interface Row {
  id: number;
  s: number | null;
  b: number | null;
  r: number | null;
  d: number | null;
  ok: boolean | null;
  t: string | null;
  raw: Uint8Array | null;
  at: Date | null;
  tags: string[] | null;
  nums: number[] | null;
  small: number[] | null;
  doc: unknown;
}

const ROWS: Row[] = [
  {
    id: 1,
    s: -32768,
    b: -(2 ** 53 - 1),
    r: -1.5,
    d: Math.PI,
    ok: true,
    t: 'ünïcødé ✓ 𝄞 tab\there \\ "quoted"',
    raw: Uint8Array.from([0, 1, 254, 255]),
    at: new Date("2026-11-21T03:46:41.123Z"),
    tags: ["a", "b c", "é,{x}", ""],
    nums: [-2147483648, 0, 2147483647],
    small: [-1, 32767],
    doc: { k: [1, "two", null], nested: { ü: true } },
  },
  {
    id: 2,
    s: null,
    b: null,
    r: null,
    d: null,
    ok: null,
    t: null,
    raw: null,
    at: null,
    tags: null,
    nums: null,
    small: null,
    doc: null,
  },
  {
    id: 3,
    s: 0,
    b: 2 ** 53 - 1,
    r: 0,
    d: -0.25,
    ok: false,
    t: "",
    raw: new Uint8Array(0),
    at: new Date("1969-07-20T20:17:40.001Z"), // before both epochs: negative microseconds
    tags: [],
    nums: [],
    small: [],
    doc: [],
  },
];

function render(rows: readonly Row[]): Uint8Array {
  const w = new CopyTupleWriter(16); // tiny on purpose: exercises growth
  return copyBinaryFile(
    rows.map((r) =>
      w
        .tuple(13)
        .int4(r.id)
        .int2(r.s)
        .int8(r.b)
        .float4(r.r)
        .float8(r.d)
        .bool(r.ok)
        .text(r.t)
        .bytea(r.raw)
        .timestamptz(r.at?.getTime())
        .textArray(r.tags)
        .int4Array(r.nums)
        .int2Array(r.small)
        .jsonb(r.doc === null ? null : JSON.stringify(r.doc))
        .take(),
    ),
  );
}

function suite(name: string, open: () => Promise<{ db: Db; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let ctx: Awaited<ReturnType<typeof open>>;
    beforeAll(async () => {
      ctx = await open();
      await ctx.db.exec(DDL);
    });
    afterAll(async () => {
      await ctx.db.close();
      await ctx.cleanup();
    });

    it("round-trips every field type, NULLs, unicode, negative numbers, old timestamps and empty arrays", async () => {
      const n = await ctx.db.transaction((tx) =>
        tx.copyFromBinary(`COPY copy_types (${COLS}) FROM STDIN WITH (FORMAT binary)`, render(ROWS)),
      );
      expect(n).toBe(3);
      const back = await ctx.db.query<Row>(`SELECT ${COLS} FROM copy_types ORDER BY id`);
      expect(back.rows.map((r) => ({ ...r, raw: r.raw && [...r.raw] }))).toEqual(
        ROWS.map((r) => ({ ...r, raw: r.raw && [...r.raw] })),
      );
      const us = await ctx.db.query<{ us: string }>(
        "SELECT (extract(epoch FROM at) * 1000000)::bigint::text AS us FROM copy_types WHERE id = 1",
      );
      expect(us.rows[0]?.us).toBe("1795232801123000");
    });

    it("reports a duplicate key as unique_violation (23505) and leaves the connection usable after a savepoint", async () => {
      await ctx.db.exec("CREATE TABLE IF NOT EXISTS copy_keys (k int4 PRIMARY KEY)");
      const keys = (ks: number[]) => copyBinaryFile(ks.map((k) => new CopyTupleWriter().tuple(1).int4(k).take()));
      const stored = await ctx.db.transaction(async (tx) => {
        await tx.copyFromBinary("COPY copy_keys (k) FROM STDIN WITH (FORMAT binary)", keys([1, 2]));
        await tx.exec("SAVEPOINT s");
        const err = await tx.copyFromBinary("COPY copy_keys (k) FROM STDIN WITH (FORMAT binary)", keys([3, 2])).then(
          () => undefined,
          (e: unknown) => e as { code?: string },
        );
        expect(err?.code).toBe("23505");
        await tx.exec("ROLLBACK TO SAVEPOINT s");
        return tx.query<{ k: number }>("SELECT k FROM copy_keys ORDER BY k");
      });
      expect(stored.rows.map((r) => r.k)).toEqual([1, 2]);
    });
  });
}

suite("binary COPY on PGlite", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "db-copy-"));
  return { db: await openDb({ dataDir, logger }), cleanup: () => rm(dataDir, { recursive: true, force: true }) };
});

describe.skipIf(!testDatabaseUrl)(`binary COPY on PostgreSQL${needsPostgres}`, () => {
  suite("server", async () => {
    const t = await createTestDatabase("dbcopy");
    return { db: await openDb({ databaseUrl: t.url, dataDir: "/nonexistent", logger }), cleanup: () => t.drop() };
  });
});
