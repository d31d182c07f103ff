import { Command, InvalidArgumentError } from "commander";
import { untilShutdownSignal } from "@esp-fleet/common/cli";
import swagger from "@fastify/swagger";
import { buildHttpApp, createHttpContext } from "@esp-fleet/common/http";
import { createLogger } from "@esp-fleet/common/logger";
import { loadConfig } from "@esp-fleet/common/config";
import { discoverMqttUrl } from "@esp-fleet/common/discovery";
import { FleetError, errorMessage } from "@esp-fleet/common/errors";
import { migrate, openDb } from "@esp-fleet/db";
import { SqalConfigSchema } from "./config.ts";
import { sqalHttpPlugin } from "./http.ts";
import { createSqal } from "./service.ts";
import { SimulationManager } from "./simulations.ts";
import { DEFAULT_THRESHOLDS } from "./grading/thresholds.ts";
import { diagnosisMarkdown } from "./diagnosis/report.ts";

function int(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer ${min}–${max}`);
    return n;
  };
}
function num(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`must be a number ${min}–${max}`);
    return n;
  };
}

/** `esp-fleet sqal`: the service (default) and `esp-fleet sqal diagnosis-report`. */
export async function run(argv: string[]): Promise<number> {
  let exit = 0;
  const program = new Command("esp-fleet sqal")
    .description(
      "Grade every SQAL sample, run the lot monitor (feeding → pending → inspecting → inspected → approved|rejected), diagnose fridges, " +
        "serve /health, /health/ready, /metrics, /api/v1/lots…, /api/v1/diagnosis, /api/v1/simulations, /openapi.json.\n" +
        "Configured by environment: MQTT_URL, DATABASE_URL, DATA_DIR, HTTP_PORT (8083), SQAL_* (see README).",
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) })
    .action(async () => {
      exit = await serve();
    });
  program
    .command("diagnosis-report")
    .description(
      "run the emulator's fridge model with a seed, diagnose every reading, print the confusion matrix (Markdown or JSON)",
    )
    .option("--seed <n>", "seed", int(0, 2 ** 31), 42)
    .option("--fridges <n>", "fridges", int(1, 10_000), 100)
    .option("--readings <n>", "readings per fridge", int(1, 1_000_000), 500)
    .option("--interval <s>", "simulated seconds between readings", num(1, 3600), 60)
    .option("--fault-prob <p>", "fault probability per reading", num(0, 1), 0.1)
    .option("--json", "print JSON instead of Markdown")
    .action(
      async (o: { seed: number; fridges: number; readings: number; interval: number; faultProb: number; json?: boolean }) => {
        const { runSeededDiagnosis } = await import("./diagnosis/simulate.ts");
        const r = runSeededDiagnosis({
          seed: o.seed,
          fridges: o.fridges,
          readings: o.readings,
          intervalS: o.interval,
          faultProb: o.faultProb,
        });
        process.stdout.write(
          o.json
            ? `${JSON.stringify(r)}\n`
            : `${diagnosisMarkdown(r, `seed ${o.seed}, ${o.fridges} fridges × ${o.readings} readings, one reading every ${o.interval} s, fault probability ${o.faultProb}`)}\n`,
        );
        exit = r.identifiedRate >= 0.95 && r.falseAlarmRate <= 0.01 ? 0 : 1;
      },
    );
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (code !== undefined) return code;
    process.stderr.write(`esp-fleet sqal: ${errorMessage(e)}\n`);
    return 1;
  }
  return exit;
}

async function serve(): Promise<number> {
  let config;
  try {
    config = loadConfig(SqalConfigSchema);
  } catch (e) {
    process.stderr.write(`esp-fleet sqal: ${errorMessage(e)}\n`);
    return 2;
  }
  const logger = createLogger("sqal", { level: config.LOG_LEVEL });
  try {
    const mqttUrl = (await discoverMqttUrl(config.MQTT_URL)).url;
    const db = await openDb({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, logger });
    await migrate(db, { logger });
    const ctx = createHttpContext(logger);
    const sqal = createSqal({
      db,
      mqttUrl,
      credentials: config.MQTT_USERNAME ? { username: config.MQTT_USERNAME, password: config.MQTT_PASSWORD } : undefined,
      clientId: config.MQTT_CLIENT_ID,
      logger,
      metrics: ctx.metrics,
      lotRule: {
        ...DEFAULT_THRESHOLDS.lot,
        forbidden: config.SQAL_LOT_REJECT_FORBIDDEN ? ["REJECT"] : [],
        minGoodShare: config.SQAL_LOT_MIN_GOOD_SHARE,
      },
      samplesPerLot: config.SQAL_SAMPLES_PER_LOT,
      inspectionTimeoutMs: config.SQAL_INSPECTION_TIMEOUT_MS,
      maxAttempts: config.SQAL_MAX_ATTEMPTS,
      retryBaseMs: config.SQAL_RETRY_BASE_MS,
      retryMaxMs: config.SQAL_RETRY_MAX_MS,
    });
    const simulations = new SimulationManager(mqttUrl, logger);
    const app = buildHttpApp(ctx);
    await app.register(swagger, { openapi: { info: { title: "esp-fleet sqal", version: "1" } } });
    await app.register(sqalHttpPlugin, { sqal, simulations, ctx });
    app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
    await sqal.start();
    await app.listen({ port: config.HTTP_PORT, host: "0.0.0.0" });
    logger.info({ port: config.HTTP_PORT }, "sqal HTTP API listening");
    await untilShutdownSignal(logger);
    await app.close();
    await simulations.stopAll();
    await sqal.stop();
    await db.close();
    const s = sqal.stats();
    process.stdout.write(
      `sqal: graded ${s.graded}, duplicates ${s.duplicates}, invalid ${s.invalid}, fridge readings ${s.fridgeReadings}, diagnosis events ${s.diagnosisEvents}\n`,
    );
    return 0;
  } catch (e) {
    logger.fatal({ err: e }, e instanceof FleetError ? e.message : "sqal failed");
    return 1;
  }
}
