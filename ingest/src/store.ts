import type { Db, Queryable } from "@esp-fleet/db";
import { copyBinaryFile } from "@esp-fleet/db/copy-binary";
import {
  CHANNEL_TABLES,
  TABLE_COLUMNS,
  copyBytea,
  copyText,
  type ChannelTable,
  type DeviceRef,
  type MetaUpdate,
  type Outcome,
} from "./rows.ts";

/**
 * One batch → one transaction: the channel rows of each table binary-COPYed straight into the table, dead
 * letters COPYed, the device registry upserted. Nothing is acknowledged before this commits.
 *
 * Exactly once, cheaply: duplicates are rare in steady state (a redelivery after a crash or a reconnect),
 * so each table's rows first go in with one plain COPY inside a savepoint. If any of them is already
 * stored (or twice in the batch) the COPY fails with unique_violation; the savepoint is rolled back and
 * that table's rows take the dedup path — COPY into a session-temporary staging table, then
 * `INSERT … SELECT … ON CONFLICT DO NOTHING` on the idempotency key (dev, boot, seq) — which counts
 * inserted and duplicate rows exactly. The common case costs one COPY instead of a COPY plus an
 * INSERT … SELECT (which doubled the server's time).
 */

export interface BatchItem {
  outcome: Outcome;
  topic: string;
  payload: Uint8Array;
  receivedAt: number;
}

export interface BatchResult {
  inserted: Partial<Record<ChannelTable, number>>;
  duplicates: Partial<Record<ChannelTable, number>>;
  deadLetters: number;
  metaApplied: number;
  statusApplied: number;
  /** Devices whose last_seen was written, with the time written. */
  seen: Map<string, number>;
}

/** Decides which devices need their `last_seen` rewritten (a cache keeps the write rate down). */
export interface LastSeenCache {
  /** The last_seen written for a device (or being written by another batch in flight), or undefined. */
  get(dev: string): number | undefined;
  /**
   * Called, before the transaction starts, for each device this batch is about to upsert: a batch committing
   * beside it then leaves those rows alone instead of waiting for their row locks.
   */
  claim?(dev: string, at: number): void;
}

const STAGING_DDL = CHANNEL_TABLES.map(
  (t) => `CREATE TEMP TABLE IF NOT EXISTS stage_${t} (LIKE ${t} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
).join(";\n");

export async function writeBatch(
  db: Db,
  items: readonly BatchItem[],
  cache: LastSeenCache,
  lastSeenResolutionMs: number,
): Promise<BatchResult> {
  const byTable = new Map<ChannelTable, Uint8Array[]>();
  const statusByKey = new Map<
    string,
    { dev: string; state: string; reason: string | null; boot: number; at: number; order: number }
  >();
  const metaByDev = new Map<string, MetaUpdate>();
  const devices = new Map<string, { ref: DeviceRef; first: number; last: number; force: boolean }>();
  const dead: string[] = [];

  const touch = (ref: DeviceRef, at: number, force: boolean) => {
    const d = devices.get(ref.dev);
    if (!d) devices.set(ref.dev, { ref, first: at, last: at, force });
    else {
      d.first = Math.min(d.first, at);
      d.last = Math.max(d.last, at);
      d.force ||= force;
    }
  };

  items.forEach((item, order) => {
    const o = item.outcome;
    switch (o.type) {
      case "row": {
        let tuples = byTable.get(o.table);
        if (!tuples) byTable.set(o.table, (tuples = []));
        tuples.push(o.tuple);
        touch(o.device, item.receivedAt, o.status !== undefined);
        if (o.status) statusByKey.set(o.key, { dev: o.device.dev, ...o.status, at: item.receivedAt, order });
        break;
      }
      case "meta": {
        touch(o.device, item.receivedAt, true);
        const prev = metaByDev.get(o.device.dev);
        if (!prev || prev.boot < o.meta.boot || (prev.boot === o.meta.boot && prev.seq < o.meta.seq))
          metaByDev.set(o.device.dev, o.meta);
        break;
      }
      case "dead":
        dead.push(
          `${new Date(item.receivedAt).toISOString()}\t${copyText(item.topic)}\t${copyBytea(item.payload)}\t${copyText(o.stage)}\t${copyText(o.reason)}\t${o.dev === null ? "\\N" : copyText(o.dev)}`,
        );
        break;
      case "ignored":
        break;
      default: {
        const never: never = o;
        return never;
      }
    }
  });

  const result: BatchResult = { inserted: {}, duplicates: {}, deadLetters: 0, metaApplied: 0, statusApplied: 0, seen: new Map() };
  // Registry rows to write: new devices, devices whose last_seen is stale by the resolution, and any
  // device with a status or meta in this batch (those updates need the row).
  const upserts = [...devices.values()]
    .filter((d) => {
      const written = cache.get(d.ref.dev);
      return d.force || written === undefined || d.last - written >= lastSeenResolutionMs;
    })
    .sort((a, b) => (a.ref.dev < b.ref.dev ? -1 : a.ref.dev > b.ref.dev ? 1 : 0)); // one lock order across workers

  if (byTable.size === 0 && dead.length === 0 && upserts.length === 0 && metaByDev.size === 0) return result;
  if (cache.claim) for (const d of upserts) cache.claim(d.ref.dev, d.last);

  await db.transaction(async (tx) => {
    if (upserts.length > 0) {
      await tx.query(
        `INSERT INTO devices (id, kind, site, first_seen, last_seen)
         SELECT u.id, u.kind, u.site, to_timestamp(u.first / 1000.0), to_timestamp(u.last / 1000.0)
         FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[]) AS u(id, kind, site, first, last)
         ON CONFLICT (id) DO UPDATE SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen),
                                        first_seen = LEAST(devices.first_seen, EXCLUDED.first_seen)`,
        [
          upserts.map((d) => d.ref.dev),
          upserts.map((d) => d.ref.kind),
          upserts.map((d) => d.ref.site),
          upserts.map((d) => d.first),
          upserts.map((d) => d.last),
        ],
      );
      for (const d of upserts) result.seen.set(d.ref.dev, d.last);
    }
    for (const [table, tuples] of byTable) {
      const stored = await copyExactlyOnce(tx, table, tuples, table === "device_status");
      result.inserted[table] = stored.inserted;
      result.duplicates[table] = tuples.length - stored.inserted;
      if (table === "device_status") result.statusApplied = await applyStatus(tx, stored.keys ?? statusByKey.keys(), statusByKey);
    }
    if (metaByDev.size > 0) result.metaApplied = await applyMeta(tx, metaByDev);
    if (dead.length > 0) {
      result.deadLetters = await tx.copyFrom(
        "COPY dead_letters (received_at, topic, payload, stage, reason, dev) FROM STDIN",
        `${dead.join("\n")}\n`,
      );
    }
  });
  return result;
}

const UNIQUE_VIOLATION = "23505";

/**
 * Store `tuples` (binary COPY tuples of `table`) once each. `keys` (the stored rows' idempotency keys) is
 * undefined when every tuple was stored; it is only collected, on the dedup path, when `wantKeys`.
 */
async function copyExactlyOnce(
  tx: Queryable,
  table: ChannelTable,
  tuples: readonly Uint8Array[],
  wantKeys: boolean,
): Promise<{ inserted: number; keys?: string[] }> {
  const cols = TABLE_COLUMNS[table].join(", ");
  const data = copyBinaryFile(tuples);
  await tx.exec("SAVEPOINT ingest_copy");
  try {
    const inserted = await tx.copyFromBinary(`COPY ${table} (${cols}) FROM STDIN WITH (FORMAT binary)`, data);
    await tx.exec("RELEASE SAVEPOINT ingest_copy");
    return { inserted };
  } catch (e) {
    if ((e as { code?: unknown } | null)?.code !== UNIQUE_VIOLATION) throw e;
    await tx.exec("ROLLBACK TO SAVEPOINT ingest_copy");
  }
  await tx.exec(STAGING_DDL);
  await tx.copyFromBinary(`COPY stage_${table} (${cols}) FROM STDIN WITH (FORMAT binary)`, data);
  const insert = `INSERT INTO ${table} (${cols}) SELECT ${cols} FROM stage_${table} ON CONFLICT DO NOTHING`;
  if (!wantKeys) return { inserted: (await tx.query(insert)).rowCount };
  const r = await tx.query<{ dev: string; boot: number; seq: number }>(`${insert} RETURNING dev, boot, seq`);
  return { inserted: r.rowCount, keys: r.rows.map((k) => `${k.dev}\u0000${k.boot}\u0000${k.seq}`) };
}

/**
 * Registry status from newly stored status messages only (a redelivered or re-sent retained status is a
 * duplicate and changes nothing), the last one received per device, and never older than what is there.
 */
async function applyStatus(
  tx: Queryable,
  storedKeys: Iterable<string>,
  byKey: Map<string, { dev: string; state: string; reason: string | null; boot: number; at: number; order: number }>,
): Promise<number> {
  const latest = new Map<
    string,
    { dev: string; state: string; reason: string | null; boot: number; at: number; order: number }
  >();
  for (const key of storedKeys) {
    const s = byKey.get(key);
    if (!s) continue;
    const prev = latest.get(s.dev);
    if (!prev || prev.order < s.order) latest.set(s.dev, s);
  }
  if (latest.size === 0) return 0;
  const u = [...latest.values()];
  const r = await tx.query(
    `UPDATE devices AS d SET status = u.state, status_reason = u.reason, status_at = to_timestamp(u.at / 1000.0), boot = u.boot
     FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int8[]) AS u(id, state, reason, at, boot)
     WHERE d.id = u.id AND (d.status_at IS NULL OR d.status_at <= to_timestamp(u.at / 1000.0))`,
    [u.map((s) => s.dev), u.map((s) => s.state), u.map((s) => s.reason), u.map((s) => s.at), u.map((s) => s.boot)],
  );
  return r.rowCount;
}

/** Registry identity from `meta`, applied only when newer (boot, seq) than what the row holds. */
async function applyMeta(tx: Queryable, byDev: Map<string, MetaUpdate>): Promise<number> {
  const ids = [...byDev.keys()];
  const m = [...byDev.values()];
  const r = await tx.query(
    `UPDATE devices AS d SET fw = u.fw, hw = u.hw, mac = u.mac, emulated = u.emulated, meta = u.meta::jsonb,
            kind = u.kind, site = u.site, meta_boot = u.boot, meta_seq = u.seq,
            boot = GREATEST(COALESCE(d.boot, u.boot), u.boot)
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[])
          AS u(id, fw, hw, mac, emulated, meta, kind, site, boot, seq)
     WHERE d.id = u.id AND (d.meta_boot IS NULL OR (d.meta_boot, d.meta_seq) < (u.boot, u.seq))`,
    [
      ids,
      m.map((x) => x.fw),
      m.map((x) => x.hw),
      m.map((x) => x.mac),
      m.map((x) => x.emulated),
      m.map((x) => x.json),
      m.map((x) => x.kind),
      m.map((x) => x.site),
      m.map((x) => x.boot),
      m.map((x) => x.seq),
    ],
  );
  return r.rowCount;
}

/**
 * Whether a database error is worth retrying the same batch for (the server is unreachable, restarting,
 * overloaded, or the transaction lost a race), as opposed to something in the data.
 */
export function isTransientDbError(e: unknown): boolean {
  if (e instanceof TypeError || e instanceof RangeError) return false; // our bug, not the server
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = typeof err?.code === "string" ? err.code : undefined;
  if (code && /^[0-9A-Z]{5}$/.test(code)) {
    // SQLSTATE: 08 connection, 53 resources, 57P01-57P03 shutdown/crash/starting, 40 rollback (deadlock, serialization)
    return /^(08|53|40|58)/.test(code) || /^57P0[1-3]$/.test(code) || code === "55006";
  }
  // No SQLSTATE: a socket-level failure (ECONNREFUSED, ECONNRESET, "Connection terminated", timeouts).
  return true;
}
