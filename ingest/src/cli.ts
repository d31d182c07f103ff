import { Command } from "commander";
import { parseArgs, untilShutdownSignal } from "@esp-fleet/common/cli";
import swagger from "@fastify/swagger";
import { buildHttpApp, createHttpContext } from "@esp-fleet/common/http";
import { createLogger } from "@esp-fleet/common/logger";
import { loadConfig } from "@esp-fleet/common/config";
import { discoverMqttUrl } from "@esp-fleet/common/discovery";
import { FleetError, errorMessage } from "@esp-fleet/common/errors";
import { migrate, openDb } from "@esp-fleet/db";
import { IngestConfigSchema } from "./config.ts";
import { ingestHttpPlugin } from "./http.ts";
import { parsePartition } from "./partition.ts";
import { createIngest } from "./service.ts";

/** `esp-fleet ingest`: MQTT → PostgreSQL/PGlite with dead letters, plus its HTTP API on HTTP_PORT (8082). */
export async function run(argv: string[]): Promise<number> {
  const program = new Command("esp-fleet ingest").description(
    "Subscribe to device telemetry/status/meta/event (persistent session, QoS 1), store every message exactly once " +
      "(or as a dead letter), serve /health, /health/ready, /metrics, /api/v1/devices…, /api/v1/dead-letters, /openapi.json.\n" +
      "Configured by environment: MQTT_URL, DATABASE_URL, DATA_DIR, HTTP_PORT, INGEST_* (see docs/ingest.md).",
  );
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;

  let config;
  try {
    config = loadConfig(IngestConfigSchema);
  } catch (e) {
    process.stderr.write(`esp-fleet ingest: ${errorMessage(e)}\n`);
    return 2;
  }
  const logger = createLogger("ingest", { level: config.LOG_LEVEL });
  try {
    const partition = parsePartition(config.INGEST_SITES, config.INGEST_PARTITION, config.INGEST_SHARE_GROUP);
    const mqttUrl = (await discoverMqttUrl(config.MQTT_URL)).url;
    const db = await openDb({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, logger });
    await migrate(db, { logger });
    const ctx = createHttpContext(logger);
    const ingest = createIngest({
      db,
      mqttUrl,
      mqttUsername: config.MQTT_USERNAME,
      mqttPassword: config.MQTT_PASSWORD,
      clientId: config.MQTT_CLIENT_ID,
      logger,
      metrics: ctx.metrics,
      batchSize: config.INGEST_BATCH_SIZE,
      batchMs: config.INGEST_BATCH_MS,
      maxInFlight: config.INGEST_MAX_IN_FLIGHT,
      maxPending: config.INGEST_MAX_PENDING,
      lastSeenResolutionMs: config.INGEST_LAST_SEEN_MS,
      partition,
    });
    const app = buildHttpApp(ctx);
    await app.register(swagger, {
      openapi: { info: { title: "esp-fleet ingest", version: "1" } },
    });
    await app.register(ingestHttpPlugin, { db, ingest, ctx });
    app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
    await ingest.start();
    await app.listen({ port: config.HTTP_PORT, host: "0.0.0.0" });
    logger.info({ port: config.HTTP_PORT }, "ingest HTTP API listening");

    await untilShutdownSignal(logger);
    await app.close();
    await ingest.stop();
    await db.close();
    const s = ingest.stats();
    process.stdout.write(
      `ingest: received ${s.received}, stored ${s.stored}, duplicates ${s.duplicates}, dead letters ${s.deadLettered}\n`,
    );
    return 0;
  } catch (e) {
    logger.fatal({ err: e }, e instanceof FleetError ? e.message : "ingest failed");
    return 1;
  }
}
