import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { parseArgs } from "@esp-fleet/common/cli";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { Registry } from "prom-client";
import { parse as parseYaml } from "yaml";
import { errorMessage } from "@esp-fleet/common/errors";
import { createLogger } from "@esp-fleet/common/logger";
import { formatIssues } from "@esp-fleet/schemas";
import { junitXml, runScenario, textReport, type BenchEnvironment, type ScenarioResult } from "./bench-runner.ts";
import { ScenarioSchema, type Scenario } from "./scenario.ts";

export function loadScenario(file: string): Scenario {
  const raw: unknown = parseYaml(readFileSync(file, "utf8"));
  const r = ScenarioSchema.safeParse(raw);
  if (!r.success) throw new Error(`${file}: ${formatIssues(r.error)}`);
  return r.data;
}

/** The services a self-contained bench run needs: Aedes on 127.0.0.1:0, a database, ingest and sqal. */
export async function startEmbedded(opts: { databaseUrl?: string | undefined; log: ReturnType<typeof createLogger> }) {
  const { startTestBroker } = await import("@esp-fleet/common/testing");
  const { openDb, migrate } = await import("@esp-fleet/db");
  const { createIngest } = await import("@esp-fleet/ingest");
  const { createSqal } = await import("@esp-fleet/sqal");
  const broker = await startTestBroker();
  const dataDir = mkdtempSync(join(tmpdir(), "hil-bench-"));
  const db = await openDb({ databaseUrl: opts.databaseUrl, dataDir, logger: opts.log });
  await migrate(db, { logger: opts.log });
  const ingest = createIngest({
    db,
    mqttUrl: broker.url,
    clientId: "bench-ingest",
    logger: opts.log,
    metrics: new Registry(),
    batchMs: 20,
  });
  const sqal = createSqal({ db, mqttUrl: broker.url, clientId: "bench-sqal", logger: opts.log, metrics: new Registry() });
  await ingest.start();
  await sqal.start();
  return {
    mqttUrl: broker.url,
    db,
    async close() {
      await sqal.stop().catch(() => undefined);
      await ingest.stop().catch(() => undefined);
      await db.close().catch(() => undefined);
      await broker.close().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `esp-fleet bench FILE… [--url mqtt://…] [--junit PATH]` — exit code 0 when every scenario passed. */
export async function run(argv: string[]): Promise<number> {
  const program = new Command("esp-fleet bench")
    .description("run hardware-in-the-loop scenario files (YAML) against emulated devices or a real board")
    .argument("<files...>", "scenario files, e.g. hil/scenarios/*.yaml")
    .option("--url <url>", "use this broker (and --database-url for expect_rows) instead of the embedded services")
    .option("--database-url <url>", "database for expect_rows (embedded: PGlite in a temp dir unless given)")
    .option("--port <path>", "real board's serial port for scenarios in mode port")
    .option("--baud <n>", "line rate for real ports", "921600")
    .option("--junit <path>", "write JUnit XML here", "reports/bench-junit.xml");
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const o = program.opts<{ url?: string; databaseUrl?: string; port?: string; baud: string; junit: string }>();
  const files = program.args;
  const log = createLogger("bench", { level: process.env.LOG_LEVEL ?? "warn" });
  let scenarios: { file: string; scenario: Scenario }[];
  try {
    scenarios = files.map((file) => ({ file, scenario: loadScenario(file) }));
  } catch (e) {
    process.stderr.write(`esp-fleet bench: ${errorMessage(e)}\n`);
    return 2;
  }
  let embedded: Awaited<ReturnType<typeof startEmbedded>> | undefined;
  let env: BenchEnvironment;
  if (o.url) {
    let db;
    if (o.databaseUrl) {
      const { openDb } = await import("@esp-fleet/db");
      db = await openDb({ databaseUrl: o.databaseUrl, dataDir: tmpdir(), logger: log });
    }
    env = { mqttUrl: o.url, db, port: o.port, baud: Number(o.baud), log };
  } else {
    embedded = await startEmbedded({ databaseUrl: o.databaseUrl, log });
    env = { mqttUrl: embedded.mqttUrl, db: embedded.db, port: o.port, baud: Number(o.baud), log };
  }
  const results: ScenarioResult[] = [];
  try {
    for (const { file, scenario } of scenarios) {
      process.stdout.write(`… ${scenario.name}\n`);
      results.push(await runScenario(scenario, env, file));
    }
  } finally {
    await embedded?.close();
    if (!embedded) await env.db?.close().catch(() => undefined);
  }
  process.stdout.write(`${textReport(results)}\n`);
  mkdirSync(dirname(o.junit), { recursive: true });
  writeFileSync(o.junit, junitXml(results));
  process.stdout.write(`JUnit XML: ${o.junit}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}
