import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { z } from "zod";
import { NotFoundError } from "@esp-fleet/common/errors";
import type { HttpContext } from "@esp-fleet/common/http";
import { DEVICE_KINDS, SegmentSchema, formatIssues } from "@esp-fleet/schemas";
import type { Db } from "@esp-fleet/db";
import type { IngestService } from "./service.ts";

/**
 * The ingest HTTP API (a Fastify plugin, mounted by `esp-fleet ingest` and by the all-in-one):
 * devices, telemetry (raw and bucketed), dead letters and ingest stats under `/api/v1`. Registering it
 * also adds the `db` and `mqtt` readiness checks to the shared context. Query parameters are validated
 * with zod (400 with the reason); the route schemas feed @fastify/swagger's OpenAPI document.
 */
export interface IngestHttpOptions {
  ingest?: IngestService;
  db: Db;
  ctx?: HttpContext;
}

const isoDate = z.iso.datetime({ offset: true }).transform((s) => new Date(s));
const limit = (def: number, max: number) => z.coerce.number().int().min(1).max(max).default(def);

export const DevicesQuerySchema = z.object({
  kind: z.enum(DEVICE_KINDS).optional(),
  site: SegmentSchema.optional(),
  status: z.enum(["online", "offline", "error", "unknown"]).optional(),
  limit: limit(500, 10_000),
  offset: z.coerce.number().int().min(0).default(0),
});

export const DeviceParamsSchema = z.object({ id: SegmentSchema });

export const TelemetryQuerySchema = z.object({
  from: isoDate.optional().describe("ISO 8601 with offset; default: to minus 1 hour"),
  to: isoDate.optional().describe("ISO 8601 with offset; default: now"),
  limit: limit(100, 10_000),
});

const BUCKETS = { "1m": "1 minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour", "1d": "1 day" } as const;
export const BucketQuerySchema = TelemetryQuerySchema.extend({
  bucket: z.enum(Object.keys(BUCKETS) as [keyof typeof BUCKETS, ...(keyof typeof BUCKETS)[]]).default("1m"),
  limit: limit(1000, 10_000),
});

export const DeadLettersQuerySchema = z.object({
  stage: z.string().max(32).optional(),
  dev: SegmentSchema.optional(),
  limit: limit(100, 1000),
});

/** `rows`: what raw telemetry reads (sqal: the view that turns the stored ToF bytes back into arrays). */
const TELEMETRY: Record<(typeof DEVICE_KINDS)[number], { table: string; rows?: string; aggregates: string }> = {
  fridge: {
    table: "fridge_readings",
    aggregates:
      "avg(t) AS t_avg, min(t) AS t_min, max(t) AS t_max, avg(p_lo) AS p_lo_avg, avg(p_hi) AS p_hi_avg, avg(i_comp) AS i_comp_avg, avg(v_sup) AS v_sup_avg, avg(vib) AS vib_avg, avg(rh) AS rh_avg, avg(flow) AS flow_avg, bool_or(door) AS door_opened",
  },
  sqal: { table: "sqal_samples", rows: "sqal_samples_arrays", aggregates: "avg(temp) AS temp_avg, count(DISTINCT lot) AS lots" },
  gavage: {
    table: "feeding_records",
    aggregates: "avg(weight) AS weight_avg, sum(dose) AS dose_sum, min(alive) AS alive_min, max(mortality) AS mortality_max",
  },
};

function validator(schema: z.ZodType) {
  return () => (data: unknown) => {
    const r = schema.safeParse(data ?? {});
    return r.success ? { value: r.data } : { error: new Error(formatIssues(r.error)) };
  };
}

function docs(schema: z.ZodType) {
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
}

async function findDevice(db: Db, id: string) {
  const r = await db.query<{ id: string; kind: (typeof DEVICE_KINDS)[number] }>("SELECT * FROM devices WHERE id = $1", [id]);
  const row = r.rows[0];
  if (!row) throw new NotFoundError(`no device ${JSON.stringify(id)}`);
  return row;
}

function range(q: { from?: Date | undefined; to?: Date | undefined }): [Date, Date] {
  const to = q.to ?? new Date();
  return [q.from ?? new Date(to.getTime() - 3600_000), to];
}

export const ingestHttpPlugin: FastifyPluginAsync<IngestHttpOptions> = async (app: FastifyInstance, opts) => {
  const { db, ingest, ctx } = opts;
  if (ctx) {
    ctx.readiness.add("db", () => db.ping());
    if (ingest)
      ctx.readiness.add("mqtt", async () => {
        if (!ingest.mqttConnected()) throw new Error("not connected to the broker");
      });
  }
  const tags = ["ingest"];

  app.get(
    "/api/v1/devices",
    {
      schema: { tags, summary: "Device registry", querystring: docs(DevicesQuerySchema) },
      validatorCompiler: validator(DevicesQuerySchema),
    },
    async (req) => {
      const q = req.query as z.infer<typeof DevicesQuerySchema>;
      const r = await db.query(
        `SELECT id, kind, site, status, status_reason, status_at, boot, fw, hw, mac, emulated, first_seen, last_seen
         FROM devices
         WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR site = $2) AND ($3::text IS NULL OR status = $3)
         ORDER BY id LIMIT $4 OFFSET $5`,
        [q.kind ?? null, q.site ?? null, q.status ?? null, q.limit, q.offset],
      );
      return { devices: r.rows, count: r.rows.length };
    },
  );

  app.get(
    "/api/v1/devices/:id",
    {
      schema: { tags, summary: "One device: registry row and latest status", params: docs(DeviceParamsSchema) },
      validatorCompiler: validator(DeviceParamsSchema),
    },
    async (req) => {
      const { id } = req.params as z.infer<typeof DeviceParamsSchema>;
      const device = await findDevice(db, id);
      const status = await db.query("SELECT * FROM device_status WHERE dev = $1 ORDER BY ts DESC LIMIT 1", [id]);
      return { device, lastStatus: status.rows[0] ?? null };
    },
  );

  app.get(
    "/api/v1/devices/:id/telemetry",
    {
      schema: {
        tags,
        summary: "Raw telemetry of one device, newest first",
        params: docs(DeviceParamsSchema),
        querystring: docs(TelemetryQuerySchema),
      },
      validatorCompiler: (route) => validator(route.httpPart === "params" ? DeviceParamsSchema : TelemetryQuerySchema)(),
    },
    async (req) => {
      const { id } = req.params as z.infer<typeof DeviceParamsSchema>;
      const q = req.query as z.infer<typeof TelemetryQuerySchema>;
      const device = await findDevice(db, id);
      const [from, to] = range(q);
      const t = TELEMETRY[device.kind];
      const r = await db.query(
        `SELECT * FROM ${t.rows ?? t.table} WHERE dev = $1 AND ts >= $2 AND ts < $3 ORDER BY ts DESC LIMIT $4`,
        [id, from, to, q.limit],
      );
      return { device: id, kind: device.kind, from, to, rows: r.rows };
    },
  );

  app.get(
    "/api/v1/devices/:id/telemetry/buckets",
    {
      schema: {
        tags,
        summary: "Telemetry of one device in time buckets",
        params: docs(DeviceParamsSchema),
        querystring: docs(BucketQuerySchema),
      },
      validatorCompiler: (route) => validator(route.httpPart === "params" ? DeviceParamsSchema : BucketQuerySchema)(),
    },
    async (req) => {
      const { id } = req.params as z.infer<typeof DeviceParamsSchema>;
      const q = req.query as z.infer<typeof BucketQuerySchema>;
      const device = await findDevice(db, id);
      const [from, to] = range(q);
      const t = TELEMETRY[device.kind];
      // date_bin works on plain PostgreSQL, PGlite and TimescaleDB alike: one query everywhere.
      const r = await db.query(
        `SELECT date_bin($2::interval, ts, TIMESTAMPTZ '2000-01-01') AS bucket, count(*) AS n, ${t.aggregates}
         FROM ${t.table} WHERE dev = $1 AND ts >= $3 AND ts < $4
         GROUP BY bucket ORDER BY bucket LIMIT $5`,
        [id, BUCKETS[q.bucket], from, to, q.limit],
      );
      return { device: id, kind: device.kind, bucket: q.bucket, from, to, buckets: r.rows };
    },
  );

  app.get(
    "/api/v1/dead-letters",
    {
      schema: {
        tags,
        summary: "Messages that could not be decoded, validated or stored",
        querystring: docs(DeadLettersQuerySchema),
      },
      validatorCompiler: validator(DeadLettersQuerySchema),
    },
    async (req) => {
      const q = req.query as z.infer<typeof DeadLettersQuerySchema>;
      const r = await db.query<{ payload: Uint8Array }>(
        `SELECT id, received_at, topic, payload, stage, reason, dev FROM dead_letters
         WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR dev = $2)
         ORDER BY id DESC LIMIT $3`,
        [q.stage ?? null, q.dev ?? null, q.limit],
      );
      return {
        deadLetters: r.rows.map((row) => ({ ...row, payload: Buffer.from(row.payload).toString("hex") })),
      };
    },
  );

  app.get("/api/v1/ingest/stats", { schema: { tags, summary: "Ingest counters" } }, async () => {
    if (!ingest) throw new NotFoundError("ingest is not running in this process");
    return ingest.stats();
  });
};
