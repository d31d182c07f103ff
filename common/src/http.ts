import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from "fastify";
import { Registry, collectDefaultMetrics } from "prom-client";
import { FleetError, httpStatusFor, errorMessage } from "./errors.ts";
import type { Logger } from "./logger.ts";

/** A named readiness check: resolves when the dependency is usable, throws (with a reason) when not. */
export type ReadinessCheck = () => Promise<void>;

export class Readiness {
  readonly #checks = new Map<string, ReadinessCheck>();
  add(name: string, check: ReadinessCheck): void {
    this.#checks.set(name, check);
  }
  async run(timeoutMs = 2000): Promise<{ ready: boolean; checks: Record<string, { ok: boolean; error?: string; ms: number }> }> {
    const results: Record<string, { ok: boolean; error?: string; ms: number }> = {};
    await Promise.all(
      [...this.#checks].map(async ([name, check]) => {
        const t0 = performance.now();
        try {
          await Promise.race([
            check(),
            new Promise((_, rej) => setTimeout(() => rej(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs).unref()),
          ]);
          results[name] = { ok: true, ms: Math.round(performance.now() - t0) };
        } catch (e) {
          results[name] = { ok: false, error: errorMessage(e), ms: Math.round(performance.now() - t0) };
        }
      }),
    );
    return { ready: Object.values(results).every((r) => r.ok), checks: results };
  }
}

export interface HttpContext {
  logger: Logger;
  readiness: Readiness;
  metrics: Registry;
}

export function createHttpContext(logger: Logger, opts: { defaultMetrics?: boolean; prefix?: string } = {}): HttpContext {
  const metrics = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: metrics, prefix: opts.prefix ?? "esp_fleet_" });
  return { logger, readiness: new Readiness(), metrics };
}

/**
 * The HTTP shell every service shares: `/health` (liveness), `/health/ready` (every registered
 * dependency check), `/metrics` (Prometheus text), and one error handler mapping stable error codes to
 * statuses. Services add their routes as plugins. Nothing listens until the caller calls `listen`.
 */
export function buildHttpApp(ctx: HttpContext, options: FastifyServerOptions = {}): FastifyInstance {
  const app = Fastify({
    loggerInstance: ctx.logger.child({ component: "http" }),
    logController: new LogController({ disableRequestLogging: true }),
    ...options,
  });
  app.setErrorHandler((error: unknown, request, reply) => {
    if (error instanceof FleetError) {
      void reply.status(httpStatusFor(error.code)).send({ error: error.code, message: error.message, details: error.details });
      return;
    }
    const e = error as { validation?: unknown; statusCode?: number; message?: string };
    if (e.validation || (e.statusCode && e.statusCode < 500)) {
      void reply.status(e.statusCode ?? 400).send({ error: "BAD_INPUT", message: e.message ?? "bad request" });
      return;
    }
    request.log.error({ err: error }, "unhandled error");
    void reply.status(500).send({ error: "INTERNAL", message: "internal error" });
  });
  app.get("/health", async () => ({ status: "ok", uptime_s: Math.round(process.uptime()) }));
  app.get("/health/ready", async (_req, reply) => {
    const result = await ctx.readiness.run();
    return reply.status(result.ready ? 200 : 503).send(result);
  });
  app.get("/metrics", async (_req, reply) => {
    return reply.type(ctx.metrics.contentType).send(await ctx.metrics.metrics());
  });
  return app;
}
