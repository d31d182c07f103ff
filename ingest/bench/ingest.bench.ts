/**
 * bench:ingest — rows/s into local PostgreSQL for SQAL samples and fridge readings:
 *   (1) raw COPY of the same rows, in the same format the ingest path sends (binary COPY tuples rendered
 *       by classify), straight into the table in batches of the same size — the limit on this machine;
 *   (2) the ingest path fed pre-encoded CBOR messages: decode + zod validation + binary row rendering +
 *       exactly-once store (one COPY per table inside a savepoint; the staging + INSERT … ON CONFLICT DO
 *       NOTHING path for a batch holding an already-stored key) + registry, in the same batch size, with
 *       decode of the next batch overlapping the commit of the previous one (as in the service).
 * Uses a fresh database on TEST_DATABASE_URL (default the local server), dropped at the end.
 * Usage: flock /tmp/bench.lock npm run bench:ingest [-- --sqal 100000 --fridge 200000 --batch 2000]
 */
import { parseArgs } from "node:util";
import { silentLogger } from "@esp-fleet/common/logger";
import { copyBinaryFile, migrate, openDb, type Db } from "@esp-fleet/db";
import type { DeviceAddress } from "@esp-fleet/schemas";
import { classify, TABLE_COLUMNS, writeBatch, type BatchItem, type ChannelTable } from "../src/index.ts";
import { fridgeReading, sqalSample, type Msg } from "../test/helpers.ts";

const { values } = parseArgs({
  options: {
    sqal: { type: "string", default: "100000" },
    fridge: { type: "string", default: "200000" },
    batch: { type: "string", default: "2000" },
    dup: { type: "string", default: "0.1" },
  },
});
process.env.TEST_DATABASE_URL ||= "postgres://postgres:postgres@127.0.0.1:5432/postgres";
const logger = silentLogger();
const batch = Number(values.batch);

function messages(kind: "sqal" | "fridge", n: number): Msg[] {
  const devices: DeviceAddress[] = Array.from({ length: 1000 }, (_, i) => ({ site: "LL", kind, dev: `${kind}_${i}` }));
  const t0 = Date.now() - n;
  const out: Msg[] = [];
  for (let i = 0; i < n; i++) {
    const a = devices[i % devices.length]!;
    const seq = Math.floor(i / devices.length);
    out.push(kind === "sqal" ? sqalSample(a, 1, seq, t0 + i) : fridgeReading(a, 1, seq, t0 + i));
  }
  return out;
}

async function rawCopy(db: Db, table: ChannelTable, tuples: Uint8Array[]): Promise<number> {
  await db.query(`TRUNCATE ${table}`);
  const cols = TABLE_COLUMNS[table].join(", ");
  const t0 = performance.now();
  for (let i = 0; i < tuples.length; i += batch) {
    const data = copyBinaryFile(tuples.slice(i, i + batch));
    await db.transaction((tx) => tx.copyFromBinary(`COPY ${table} (${cols}) FROM STDIN WITH (FORMAT binary)`, data));
  }
  const s = (performance.now() - t0) / 1000;
  await db.query(`TRUNCATE ${table}`);
  return tuples.length / s;
}

/**
 * Messages reach the service a socket read at a time (~100 SQAL samples in 64 KB), and the event loop
 * runs between reads — which is what lets the previous batch's COPY and COMMIT round trips proceed while
 * the next batch is decoded. Decoding a whole batch in one synchronous loop would stall them (no overlap).
 */
async function classifyChunked(msgs: Msg[], chunk = 100): Promise<BatchItem[]> {
  const items: BatchItem[] = [];
  for (let j = 0; j < msgs.length; j += chunk) {
    const now = Date.now();
    for (const m of msgs.slice(j, j + chunk))
      items.push({ topic: m.topic, payload: m.payload, receivedAt: now, outcome: classify(m.topic, m.payload, now) });
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return items;
}

async function ingestPath(db: Db, msgs: Msg[]): Promise<{ rate: number; stored: number; duplicates: number; nodeCpu: number }> {
  const seen = new Map<string, number>();
  const cache = { get: (d: string) => seen.get(d) };
  let stored = 0;
  let duplicates = 0;
  let pending: Promise<void> | undefined;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < msgs.length; i += batch) {
    const items = await classifyChunked(msgs.slice(i, i + batch));
    if (pending) await pending;
    pending = writeBatch(db, items, cache, 5000).then((r) => {
      for (const [d, at] of r.seen) seen.set(d, at);
      for (const n of Object.values(r.inserted)) stored += n ?? 0;
      for (const n of Object.values(r.duplicates)) duplicates += n ?? 0;
    });
  }
  await pending;
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { rate: msgs.length / (wallMs / 1000), stored, duplicates, nodeCpu: (cpu.user + cpu.system) / 1000 / wallMs };
}

/** The store half alone: the same batches, already classified (rows rendered), written one after another. */
async function storeOnly(db: Db, table: ChannelTable, msgs: Msg[]): Promise<number> {
  await db.query(`TRUNCATE ${table}`);
  await db.query("TRUNCATE devices");
  const now = Date.now();
  const items: BatchItem[] = msgs.map((m) => ({ ...m, receivedAt: now, outcome: classify(m.topic, m.payload, now) }));
  const seen = new Map<string, number>();
  const t0 = performance.now();
  for (let i = 0; i < items.length; i += batch) {
    const r = await writeBatch(db, items.slice(i, i + batch), { get: (d) => seen.get(d) }, 5000);
    for (const [d, at] of r.seen) seen.set(d, at);
  }
  const rate = msgs.length / ((performance.now() - t0) / 1000);
  await db.query(`TRUNCATE ${table}`);
  await db.query("TRUNCATE devices");
  return rate;
}

function decodeRate(msgs: Msg[]): number {
  const t0 = performance.now();
  for (const m of msgs) classify(m.topic, m.payload, Date.now());
  return msgs.length / ((performance.now() - t0) / 1000);
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

const { createTestDatabase } = await import("@esp-fleet/common/testing"); // after TEST_DATABASE_URL is defaulted
const target = await createTestDatabase("benchingest");
const db = await openDb({ databaseUrl: target.url, dataDir: "/nonexistent", logger });
try {
  await migrate(db, { logger });
  const load = (await import("node:os"))
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
  console.log(`bench:ingest — PostgreSQL ${target.name}, batch ${batch}, load average before: ${load}`);
  for (const [kind, table, n] of [
    ["sqal", "sqal_samples", Number(values.sqal)],
    ["fridge", "fridge_readings", Number(values.fridge)],
  ] as const) {
    const msgs = messages(kind, n);
    const dup = msgs.filter((_, i) => i % Math.round(1 / Number(values.dup)) === 0);
    const withDupes = [...msgs, ...dup];
    const tuples = msgs.map((m) => {
      const o = classify(m.topic, m.payload, Date.now());
      if (o.type !== "row") throw new Error(`unexpected ${o.type}`);
      return o.tuple;
    });
    const bytes = msgs.reduce((s, m) => s + m.payload.length, 0) / msgs.length;
    const decode = decodeRate(msgs.slice(0, 20_000));
    const copy = await rawCopy(db, table, tuples);
    const store = await storeOnly(db, table, withDupes);
    const ing = await ingestPath(db, withDupes);
    const rows = Number((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n);
    const ok = rows === msgs.length && ing.duplicates === dup.length;
    console.log(
      `${kind.padEnd(6)} ${fmt(n)} rows (+${fmt(dup.length)} duplicates), ${Math.round(bytes)} B CBOR each\n` +
        `  decode+validate only : ${fmt(decode)} msg/s\n` +
        `  raw COPY (binary)    : ${fmt(copy)} rows/s\n` +
        `  store only           : ${fmt(store)} msg/s (rows pre-rendered: exactly-once store + registry, ${((store / copy) * 100).toFixed(0)} % of raw COPY)\n` +
        `  ingest path          : ${fmt(ing.rate)} msg/s (${((ing.rate / copy) * 100).toFixed(0)} % of raw COPY), stored ${fmt(ing.stored)}, duplicates ${fmt(ing.duplicates)}, table ${fmt(rows)} rows — exactly once: ${ok ? "yes" : "NO"}\n` +
        `  ingest process CPU   : ${(ing.nodeCpu * 100).toFixed(0)} % of one core during the ingest path`,
    );
  }
} finally {
  await db.close();
  await target.drop();
}
