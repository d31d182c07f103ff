import { z } from "zod";
import type { Db } from "@esp-fleet/db";
import { LOT_CODE_RE, LOT_STATUSES, SegmentSchema } from "@esp-fleet/schemas";

/** Read side of the lot API (plain SQL on the sqal tables). */
const isoDate = z.iso.datetime({ offset: true });

export const LotsQuerySchema = z.object({
  status: z.enum(LOT_STATUSES).optional(),
  site: SegmentSchema.optional(),
  from: isoDate.optional().describe("created at or after (ISO 8601 with offset)"),
  to: isoDate.optional().describe("created before (ISO 8601 with offset)"),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
export type LotsQuery = z.infer<typeof LotsQuerySchema>;
export const LotParamsSchema = z.object({ code: z.string().regex(LOT_CODE_RE, "must be {SITE}{YYMM}{NNN}, e.g. LL2512001") });

const LOT_COLUMNS = `code, site, feeder_id, feeder, genetics, initial, days, status, status_at, created_at, feedings, last_day,
  start_weight, weight, alive, mortality, ready_at, profile, samples_n, attempts, next_attempt_at, inspection_id, station, decision, reason`;

export async function listLots(db: Db, q: LotsQuery): Promise<Record<string, unknown>[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace("?", `$${params.length}`));
  };
  if (q.status) add("status = ?", q.status);
  if (q.site) add("site = ?", q.site);
  if (q.from) add("created_at >= ?", q.from);
  if (q.to) add("created_at < ?", q.to);
  params.push(q.limit, q.offset);
  const r = await db.query<Record<string, unknown>>(
    `SELECT ${LOT_COLUMNS} FROM sqal_lots ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY created_at DESC, code LIMIT $${params.length - 1} OFFSET $${params.length}`,
    params,
  );
  return r.rows;
}

export async function lotSamples(db: Db, code: string): Promise<Record<string, unknown>[]> {
  const r = await db.query<Record<string, unknown>>(
    `SELECT dev, boot, seq, ts, graded_at, sample, idx, inspection_id, score, grade, tof_score, spectral_score, thickness_mm,
            thickness_class, volume_mm3, liver_weight_g, defects, alert, alerts
     FROM sqal_grades WHERE lot = $1 ORDER BY inspection_id NULLS LAST, idx, ts`,
    [code],
  );
  return r.rows;
}

export async function getLot(db: Db, code: string): Promise<Record<string, unknown> | undefined> {
  const r = await db.query<Record<string, unknown>>(`SELECT ${LOT_COLUMNS} FROM sqal_lots WHERE code = $1`, [code]);
  const lot = r.rows[0];
  if (!lot) return undefined;
  const [feeding, inspections, transitions, samples] = await Promise.all([
    db.query<Record<string, unknown>>(
      `SELECT count(*)::int AS records, min(day) AS first_day, max(day) AS last_day, min(ts) AS first_at, max(ts) AS last_at,
              sum(dose)::float8 AS total_dose_g, min(weight)::float8 AS min_weight_g, max(weight)::float8 AS max_weight_g,
              max(mortality)::float8 AS mortality_pct, avg(pen_t)::float8 AS pen_t_avg, avg(pen_rh)::float8 AS pen_rh_avg
       FROM sqal_lot_feedings WHERE lot = $1`,
      [code],
    ),
    db.query<Record<string, unknown>>(
      `SELECT id, attempt, station, site, cmd_id, n, profile, requested_at, deadline_at, accepted_at, finished_at, outcome, error,
              (SELECT count(*)::int FROM sqal_grades g WHERE g.inspection_id = i.id) AS graded
       FROM sqal_inspections i WHERE lot = $1 ORDER BY id`,
      [code],
    ),
    db.query<Record<string, unknown>>(
      "SELECT from_status, to_status, at, reason FROM sqal_lot_transitions WHERE lot = $1 ORDER BY id",
      [code],
    ),
    lotSamples(db, code),
  ]);
  return { ...lot, feeding: feeding.rows[0], inspections: inspections.rows, transitions: transitions.rows, samples };
}
