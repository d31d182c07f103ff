import { mkdir, readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "@esp-fleet/common/cli";
import { dirname, join } from "node:path";
import { Command } from "commander";
import mqtt, { type MqttClient } from "mqtt";
import {
  decodeMessage,
  deviceTopic,
  encodeCbor,
  serviceTopic,
  type SqalSampleInput,
  AS7341_REFERENCE_COUNTS,
} from "@esp-fleet/schemas";
import { errorMessage } from "@esp-fleet/common/errors";

/**
 * `esp-fleet check`: tests every service's health and the paths between them — HTTP liveness and
 * readiness, the broker accepting a known client and refusing a wrong password, a probe reading
 * travelling device → broker → ingest → database → API, and sqal grading it — prints a table, writes a
 * JSON report, and exits 1 when anything failed.
 */
export interface CheckResult {
  name: string;
  status: "passed" | "failed" | "skipped";
  ms: number;
  detail: string;
}

export interface CheckOptions {
  /** HTTP base URL(s): the all-in-one's one server, or each service's (compose: ingest and sqal) */
  http: string | string[];
  mqtt: string;
  /** credential to watch with (viewer); undefined = anonymous */
  viewer?: { username: string; password: string } | undefined;
  /** probe device credential: without it the end-to-end paths are skipped */
  probe?: { dev: string; site: string; password: string } | undefined;
  timeoutMs: number;
}

/** The probe device the all-in-one provisions; compose provisions the same id. */
export const PROBE_DEVICE = { dev: "CHECK_PROBE", site: "CHK" } as const;

function probeSample(dev: string, boot: number): SqalSampleInput {
  const dist = new Uint16Array(64);
  for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) dist[r * 8 + c] = r > 1 && r < 6 && c > 1 && c < 6 ? 25 : 95;
  return {
    v: 1,
    dev,
    boot,
    seq: 0,
    ts: Date.now(),
    sample: `check-${boot}`,
    tof: {
      dist,
      status: new Uint8Array(64).fill(5),
      refl: new Uint8Array(64).fill(45),
      amp: new Uint16Array(64).fill(1800),
      h: 100,
    },
    spec: { ...AS7341_REFERENCE_COUNTS, gain: 3, atime: 29, astep: 599 },
  };
}

function connect(url: string, opts: mqtt.IClientOptions, timeoutMs: number): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: timeoutMs, clean: true, ...opts });
    const fail = (e: Error) => {
      client.end(true);
      reject(e);
    };
    client.once("connect", () => resolve(client));
    client.once("error", fail);
    client.once("close", () => fail(new Error("connection closed before CONNACK")));
  });
}

async function fetchJson(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body };
}

export async function runChecks(o: CheckOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const step = async (name: string, fn: () => Promise<string>, skip?: string): Promise<boolean> => {
    if (skip) {
      results.push({ name, status: "skipped", ms: 0, detail: skip });
      return false;
    }
    const t0 = performance.now();
    try {
      const detail = await fn();
      results.push({ name, status: "passed", ms: Math.round(performance.now() - t0), detail });
      return true;
    } catch (e) {
      results.push({ name, status: "failed", ms: Math.round(performance.now() - t0), detail: errorMessage(e) });
      return false;
    }
  };
  const bases = (Array.isArray(o.http) ? o.http : [o.http]).map((u) => u.replace(/\/$/, ""));
  // The first base serves the device/telemetry API (ingest, or the all-in-one).
  const http = bases[0]!;
  const label = (base: string) => (bases.length > 1 ? ` ${base}` : "");

  for (const base of bases) {
    await step(`http: liveness (/health)${label(base)}`, async () => {
      const r = await fetchJson(`${base}/health`, o.timeoutMs);
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      return "200";
    });
    await step(`http: readiness (/health/ready: database, broker)${label(base)}`, async () => {
      const r = await fetchJson(`${base}/health/ready`, o.timeoutMs);
      const checks = (r.body as { checks?: Record<string, { ok: boolean; error?: string }> }).checks ?? {};
      const failed = Object.entries(checks).filter(([, c]) => !c.ok);
      if (r.status !== 200 || failed.length) {
        throw new Error(
          `HTTP ${r.status}; not ready: ${failed.map(([k, c]) => `${k} (${c.error ?? "failed"})`).join(", ") || "unknown"}`,
        );
      }
      return `ready: ${Object.keys(checks).join(", ")}`;
    });
  }

  let viewer: MqttClient | undefined;
  const viewerOk = await step("broker: accepts the viewer", async () => {
    viewer = await connect(o.mqtt, o.viewer ? { username: o.viewer.username, password: o.viewer.password } : {}, o.timeoutMs);
    return o.viewer ? `as ${o.viewer.username}` : "anonymous";
  });
  await step(
    "broker: refuses a wrong password",
    async () => {
      try {
        const c = await connect(o.mqtt, { username: o.probe!.dev, password: "definitely-wrong" }, o.timeoutMs);
        c.end(true);
      } catch (e) {
        const code = (e as { code?: number }).code;
        return `refused (${code !== undefined ? `CONNACK ${code}` : errorMessage(e)})`;
      }
      throw new Error("a wrong password was accepted");
    },
    o.probe ? undefined : "no probe credential (--probe-password or DATA_DIR/secrets.json)",
  );

  const noProbe = !o.probe
    ? "no probe credential (--probe-password or DATA_DIR/secrets.json)"
    : !viewerOk
      ? "broker unreachable"
      : undefined;
  const boot = Math.floor(Date.now() / 1000);
  let graded: Promise<unknown> | undefined;
  const published = await step(
    "device → broker: probe publishes a SQAL sample (QoS 1)",
    async () => {
      const p = o.probe!;
      const addr = { site: p.site, kind: "sqal" as const, dev: p.dev };
      // Subscribe to the grade before publishing, so it cannot be missed.
      const gradeTopic = serviceTopic("sqal", "samples", p.dev);
      graded = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no grade on ${gradeTopic} within ${o.timeoutMs} ms`)), o.timeoutMs);
        viewer!.on("message", (topic, payload) => {
          if (topic !== gradeTopic) return;
          const d = decodeMessage(topic, payload);
          const m = d.ok ? (d.value.message as { boot?: number; grade?: string; score?: number }) : undefined;
          if (m?.boot === boot) {
            clearTimeout(timer);
            resolve(m);
          }
        });
      });
      graded.catch(() => undefined);
      await viewer!.subscribeAsync(gradeTopic, { qos: 1 });
      const device = await connect(o.mqtt, { username: p.dev, password: p.password, clientId: `${p.dev}-check` }, o.timeoutMs);
      try {
        await device.publishAsync(deviceTopic(addr, "telemetry"), Buffer.from(encodeCbor(probeSample(p.dev, boot))), { qos: 1 });
      } finally {
        await device.endAsync();
      }
      return `${p.dev} boot ${boot} seq 0`;
    },
    noProbe,
  );
  await step(
    "broker → ingest → database → API: probe reading stored and read back",
    async () => {
      const deadline = Date.now() + o.timeoutMs;
      for (;;) {
        const r = await fetchJson(`${http}/api/v1/devices/${o.probe!.dev}/telemetry?limit=20`, o.timeoutMs);
        const rows = (r.body as { rows?: { boot: number | string; seq: number | string }[] }).rows ?? [];
        if (rows.some((row) => Number(row.boot) === boot && Number(row.seq) === 0))
          return `found via /api/v1/devices/${o.probe!.dev}/telemetry`;
        if (Date.now() > deadline) throw new Error(`not stored within ${o.timeoutMs} ms (last HTTP ${r.status})`);
        await new Promise((res) => setTimeout(res, 250));
      }
    },
    published ? undefined : (noProbe ?? "probe was not published"),
  );
  await step(
    "broker → sqal: probe sample graded",
    async () => {
      const m = (await graded) as { grade?: string; score?: number };
      return `grade ${m.grade} (score ${m.score})`;
    },
    published ? undefined : (noProbe ?? "probe was not published"),
  );
  await viewer?.endAsync();
  return results;
}

export function renderTable(results: CheckResult[]): string {
  const w = Math.max(...results.map((r) => r.name.length));
  const mark = { passed: "PASS", failed: "FAIL", skipped: "SKIP" } as const;
  return results.map((r) => `${mark[r.status]}  ${r.name.padEnd(w)}  ${String(r.ms).padStart(5)} ms  ${r.detail}`).join("\n");
}

async function readSecrets(dataDir: string): Promise<Record<string, string>> {
  try {
    return JSON.parse(await readFile(join(dataDir, "secrets.json"), "utf8")) as Record<string, string>;
  } catch {
    return {};
  }
}

export async function run(argv: string[]): Promise<number> {
  const program = new Command("esp-fleet check")
    .description(
      "Test every service's health and the paths between them; print a table, write a JSON report; exit 1 on any failure.",
    )
    .option(
      "--http <url>",
      "HTTP base URL: the all-in-one, or ingest's API (compose: http://localhost:8082)",
      process.env.CHECK_HTTP_URL ?? "http://localhost:3000",
    )
    .option("--sqal-http <url>", "sqal's HTTP base URL when it is its own service (compose: http://localhost:8083)")
    .option("--mqtt <url>", "broker URL", process.env.MQTT_URL ?? "mqtt://localhost:1883")
    .option("--username <name>", "viewer user name (default: the all-in-one's viewer, else anonymous)")
    .option("--password <password>", "viewer password")
    .option("--probe-device <id>", "probe device id (a device credential)", PROBE_DEVICE.dev)
    .option("--probe-site <site>", "probe device site", PROBE_DEVICE.site)
    .option("--probe-password <password>", "probe device password (default: from DATA_DIR/secrets.json, or CHECK_PROBE_PASSWORD)")
    .option(
      "--data-dir <dir>",
      "the all-in-one's data directory, for its viewer and probe credentials",
      process.env.DATA_DIR ?? "./data",
    )
    .option("--report <file>", "JSON report path", "reports/check.json")
    .option("--timeout <ms>", "per-step timeout", "15000");
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const o = program.opts<{
    http: string;
    sqalHttp?: string;
    mqtt: string;
    username?: string;
    password?: string;
    probeDevice: string;
    probeSite: string;
    probePassword?: string;
    dataDir: string;
    report: string;
    timeout: string;
  }>();
  const secrets = await readSecrets(o.dataDir);
  const viewerPassword = o.password ?? (o.username ? undefined : secrets.viewer);
  const probePassword = o.probePassword ?? process.env.CHECK_PROBE_PASSWORD ?? secrets[o.probeDevice];
  const results = await runChecks({
    http: o.sqalHttp ? [o.http, o.sqalHttp] : o.http,
    mqtt: o.mqtt,
    viewer: viewerPassword ? { username: o.username ?? "viewer", password: viewerPassword } : undefined,
    probe: probePassword ? { dev: o.probeDevice, site: o.probeSite, password: probePassword } : undefined,
    timeoutMs: Number(o.timeout) || 15_000,
  });
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for (const r of results) counts[r.status]++;
  process.stdout.write(
    `${renderTable(results)}\n\n${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`,
  );
  await mkdir(dirname(o.report), { recursive: true });
  await writeFile(
    o.report,
    `${JSON.stringify({ at: new Date().toISOString(), http: o.http, mqtt: o.mqtt, ...counts, results }, null, 2)}\n`,
  );
  return counts.failed > 0 ? 1 : 0;
}
