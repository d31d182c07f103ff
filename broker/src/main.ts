import { buildHttpApp, createHttpContext } from "@esp-fleet/common/http";
import { untilShutdownSignal } from "@esp-fleet/common/cli";
import { createLogger } from "@esp-fleet/common/logger";
import { ConfigError, FleetError, UnavailableError } from "@esp-fleet/common/errors";
import { createBroker, type BrokerService } from "./broker.ts";
import { loadBrokerConfig } from "./config.ts";
import { brokerHttpPlugin } from "./http-plugin.ts";

/**
 * Composition root of the standalone broker (`esp-fleet broker`): config → broker → HTTP on HTTP_PORT.
 * Resolves once everything listens; the returned `stop` shuts down gracefully (SIGINT/SIGTERM call it).
 */
export async function runBroker(
  env: Record<string, string | undefined> = process.env,
): Promise<{ broker: BrokerService; httpPort: number; stop(): Promise<void> }> {
  const config = loadBrokerConfig(env);
  const logger = createLogger("broker", { level: config.LOG_LEVEL });
  const http = createHttpContext(logger);
  let db: import("@esp-fleet/db").Db | undefined;
  if (config.DATABASE_URL) db = await openDatabase(config.DATABASE_URL, config.DATA_DIR, logger);
  const broker = await createBroker(config, { logger, http, ...(db ? { db } : {}) });
  const app = buildHttpApp(http);
  await app.register(brokerHttpPlugin, { broker });
  try {
    await broker.start();
    await app.listen({ port: config.HTTP_PORT, host: config.MQTT_HOST }).catch((err: NodeJS.ErrnoException) => {
      throw new UnavailableError(
        `HTTP_PORT=${config.HTTP_PORT}: cannot listen: ${err.code === "EADDRINUSE" ? "address already in use" : err.message}`,
      );
    });
  } catch (e) {
    await broker.stop();
    await app.close();
    await db?.close();
    throw e;
  }
  const address = app.server.address();
  const httpPort = typeof address === "object" && address ? address.port : config.HTTP_PORT;
  logger.info({ mqtt: broker.ports.mqtt, ws: broker.ports.ws, tls: broker.ports.tls, http: httpPort }, "ready");
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await app.close();
      await broker.stop();
      await db?.close();
    })());
  return { broker, httpPort, stop };
}

/** A `Db` over DATABASE_URL (the db package's pg pool). */
async function openDatabase(url: string, dataDir: string, logger: import("@esp-fleet/common/logger").Logger) {
  const { openDb } = await import("@esp-fleet/db");
  return openDb({ databaseUrl: url, dataDir, logger, poolMax: 4 });
}

/** Run until SIGINT/SIGTERM; exit code 0 on a clean stop. */
export async function main(): Promise<number> {
  let running;
  try {
    running = await runBroker();
  } catch (e) {
    if (e instanceof FleetError) {
      process.stderr.write(`esp-fleet broker: ${e.message}\n`);
      return e instanceof ConfigError ? 78 : 69;
    }
    throw e;
  }
  const { stop } = running;
  await untilShutdownSignal();
  await stop();
  return 0;
}

if (process.argv[1] && /broker[\\/]src[\\/]main\.ts$/.test(process.argv[1])) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`esp-fleet broker: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
