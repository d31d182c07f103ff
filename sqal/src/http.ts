import type { FastifyPluginAsync } from "fastify";
import { z } from "zod";
import { BadInputError, NotFoundError } from "@esp-fleet/common/errors";
import type { HttpContext } from "@esp-fleet/common/http";
import { SegmentSchema, formatIssues } from "@esp-fleet/schemas";
import { getLot, listLots, lotSamples, LotParamsSchema, LotsQuerySchema } from "./queries.ts";
import type { SqalService } from "./service.ts";
import { SimulationManager } from "./simulations.ts";
import type { Logger } from "@esp-fleet/common/logger";

/**
 * The sqal HTTP API as a Fastify plugin (mounted by `esp-fleet sqal` and by the all-in-one on the shared
 * server): lots, their samples, re-inspection, fridge diagnosis, capability, and simulations. Passing
 * `ctx` adds the `db` and `mqtt` readiness checks. Inputs are validated with zod: 400 with the reason.
 */
export interface SqalHttpOptions {
  sqal: SqalService;
  /**
   * Serves `/api/v1/simulations`. Default: one against `sqal.mqttUrl` with no device credentials
   * (pass your own with `passwordPattern` for a broker that authenticates devices); stopped with the app.
   */
  simulations?: SimulationManager;
  ctx?: HttpContext;
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new BadInputError(formatIssues(r.error));
  return r.data;
}

export const sqalHttpPlugin: FastifyPluginAsync<SqalHttpOptions> = async (app, opts) => {
  const { sqal, ctx } = opts;
  let simulations = opts.simulations;
  if (!simulations) {
    const own = new SimulationManager(sqal.mqttUrl, app.log as unknown as Logger);
    app.addHook("onClose", async () => own.stopAll());
    simulations = own;
  }
  const db = sqal.db;
  if (ctx) {
    ctx.readiness.add("db", () => db.ping());
    ctx.readiness.add("mqtt", async () => {
      if (!sqal.mqttConnected()) throw new Error(`not connected to ${sqal.mqttUrl}`);
    });
  }

  app.get(
    "/api/v1/lots",
    { schema: { tags: ["sqal"], summary: "lots, newest first (filters: status, site, from, to)" } },
    async (req) => {
      const q = parse(LotsQuerySchema, req.query);
      return { lots: await listLots(db, q) };
    },
  );

  app.get(
    "/api/v1/lots/:code",
    { schema: { tags: ["sqal"], summary: "a lot: feeding summary, inspections, samples with grades, decision, transitions" } },
    async (req) => {
      const { code } = parse(LotParamsSchema, req.params);
      const lot = await getLot(db, code);
      if (!lot) throw new NotFoundError(`lot ${code} not found`);
      return lot;
    },
  );

  const CommandParamsSchema = z.object({ id: SegmentSchema, name: SegmentSchema });
  app.post(
    "/api/v1/devices/:id/commands/:name",
    {
      schema: {
        tags: ["sqal"],
        summary:
          "send cmd/{name} to a device and return its reply (e.g. fault {action: inject, fault: fuite_fluide}, config {interval_ms}, reboot, status)",
      },
    },
    async (req) => {
      const { id, name } = parse(CommandParamsSchema, req.params);
      const body = (req.body ?? {}) as Record<string, unknown>;
      if (typeof body !== "object" || Array.isArray(body))
        throw new BadInputError("the body must be a JSON object of command arguments");
      return { device: id, command: name, reply: await sqal.sendCommand(id, name, body) };
    },
  );

  app.get("/api/v1/lots/:code/samples", { schema: { tags: ["sqal"], summary: "the graded samples of a lot" } }, async (req) => {
    const { code } = parse(LotParamsSchema, req.params);
    const lot = await db.query("SELECT 1 FROM sqal_lots WHERE code = $1", [code]);
    if (lot.rows.length === 0) throw new NotFoundError(`lot ${code} not found`);
    return { lot: code, samples: await lotSamples(db, code) };
  });

  app.post(
    "/api/v1/lots/:code/inspect",
    { schema: { tags: ["sqal"], summary: "re-inspect a decided or failed lot (→ pending)" } },
    async (req, reply) => {
      const { code } = parse(LotParamsSchema, req.params);
      const r = await sqal.reinspect(code);
      return reply.status(202).send(r);
    },
  );

  app.get(
    "/api/v1/diagnosis",
    { schema: { tags: ["sqal"], summary: "fridge diagnosis: current states and the confusion matrix against ground truth" } },
    async () => sqal.diagnosis(),
  );

  app.get("/api/v1/diagnosis/events", { schema: { tags: ["sqal"], summary: "recent fridge diagnosis events" } }, async (req) => {
    const q = parse(
      z.object({ dev: z.string().max(64).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      req.query,
    );
    const r = await db.query(
      `SELECT dev, site, at, type, fault, previous, confidence, truth FROM sqal_diagnosis_events
       ${q.dev ? "WHERE dev = $2" : ""} ORDER BY id DESC LIMIT $1`,
      q.dev ? [q.limit, q.dev] : [q.limit],
    );
    return { events: r.rows };
  });

  app.get("/api/v1/stations", { schema: { tags: ["sqal"], summary: "SQAL stations seen, with thickness Cp/Cpk" } }, async () => {
    const cap = sqal.capability();
    return { stations: sqal.stations().map((s) => ({ ...s, capability: cap[s.dev] ?? null })) };
  });

  app.post(
    "/api/v1/simulations",
    { schema: { tags: ["sqal"], summary: "start an emulated fleet (cycles 1–10000, interval 1–3600 s, fault_prob 0–1)" } },
    async (req, reply) => {
      const view = await simulations.start(req.body);
      return reply.status(202).header("location", `/api/v1/simulations/${view.id}`).send(view);
    },
  );
  app.get("/api/v1/simulations", { schema: { tags: ["sqal"], summary: "simulations started over HTTP" } }, async () => ({
    simulations: simulations.list(),
  }));
  app.get("/api/v1/simulations/:id", { schema: { tags: ["sqal"], summary: "follow a simulation" } }, async (req) => {
    const { id } = parse(z.object({ id: z.uuid() }), req.params);
    return simulations.get(id);
  });
  app.delete("/api/v1/simulations/:id", { schema: { tags: ["sqal"], summary: "stop a simulation" } }, async (req) => {
    const { id } = parse(z.object({ id: z.uuid() }), req.params);
    return simulations.stop(id);
  });
};
