import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { acceleratedClock } from "@esp-fleet/common/clock";
import { errorMessage } from "@esp-fleet/common/errors";
import type { Logger } from "@esp-fleet/common/logger";
import type { Db } from "@esp-fleet/db";
import { commandReplyTopic, commandTopic, decodeCbor, decodeMessage, encodeCbor, type DeviceAddress } from "@esp-fleet/schemas";
import { EmulatedDevice } from "@esp-fleet/device-emulator/firmware";
import { Scheduler } from "@esp-fleet/device-emulator/scheduler";
import { MemoryStateStore } from "@esp-fleet/device-emulator/state-store";
import { MqttTransport } from "@esp-fleet/device-emulator/transports/mqtt";
import { SerialBridge } from "./bridge.ts";
import { openPtyPair, type PtyPair } from "./pty.ts";
import { runSerialDevice, type SerialDeviceHandle } from "./run-serial-device.ts";
import { stepName, type Matcher, type Scenario, type Step } from "./scenario.ts";

/** What a scenario runs against: a broker, and optionally the database the services write to. */
export interface BenchEnvironment {
  mqttUrl: string;
  db?: Db | undefined;
  /** mode port: the real board's serial port */
  port?: string | undefined;
  baud?: number;
  log: Logger;
}

export interface StepResult {
  index: number;
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface ScenarioResult {
  name: string;
  file?: string;
  ok: boolean;
  ms: number;
  steps: StepResult[];
  error?: string;
}

interface Received {
  topic: string;
  at: number;
  message: unknown;
}

/** The device under test, whatever its mode. */
interface Dut {
  readings(): number;
  restart(): Promise<void>;
  linkDown(ms: number): Promise<void>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function get(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

export function matches(message: unknown, where: Record<string, Matcher>): boolean {
  for (const [path, m] of Object.entries(where)) {
    const v = path === "." ? message : get(message, path);
    if (m === null || typeof m !== "object") {
      if (!same(v, m)) return false;
      continue;
    }
    if (m.exists !== undefined && (v !== undefined) !== m.exists) return false;
    if ("eq" in m && m.eq !== undefined && !same(v, m.eq)) return false;
    if ("ne" in m && m.ne !== undefined && same(v, m.ne)) return false;
    if (m.gte !== undefined && !(typeof v === "number" && v >= m.gte)) return false;
    if (m.lte !== undefined && !(typeof v === "number" && v <= m.lte)) return false;
    if (m.in && !m.in.some((x) => same(v, x))) return false;
  }
  return true;
}

function fill<T>(value: T, vars: Record<string, string>): T {
  if (typeof value === "string") return value.replace(/\{(\w+)\}/g, (all, k: string) => vars[k] ?? all) as T;
  if (Array.isArray(value)) return value.map((v) => fill(v, vars)) as T;
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v, vars)])) as T;
  return value;
}

async function startDut(s: Scenario, addr: DeviceAddress, env: BenchEnvironment): Promise<Dut> {
  const d = s.device;
  const firmware = {
    intervalMs: d.interval_ms,
    faultProb: d.fault_prob,
    cycles: d.cycles,
    heartbeatMs: 5000,
    wifiJoinMs: [20, 50] as const,
    watchdogMs: 0,
  };
  if (d.mode === "mqtt") {
    const store = new MemoryStateStore();
    let readingsBefore = 0;
    const make = () => {
      const scheduler = new Scheduler(acceleratedClock(d.accel));
      const transport = new MqttTransport(addr, { url: env.mqttUrl });
      const device = new EmulatedDevice(addr, {
        scheduler,
        transport,
        store,
        seed: d.seed,
        options: { ...firmware, accel: d.accel },
      });
      device.start();
      return { device, scheduler };
    };
    let cur = make();
    return {
      readings: () => readingsBefore + cur.device.counters.readings,
      async restart() {
        await cur.device.stop();
        cur.scheduler.stop();
        readingsBefore += cur.device.counters.readings;
        cur = make();
      },
      async linkDown() {
        throw new Error("link_down needs a serial device (mode serial or port)");
      },
      async close() {
        await cur.device.stop();
        cur.scheduler.stop();
      },
    };
  }
  let pty: PtyPair | undefined;
  let bridgePort = d.port ?? env.port;
  if (d.mode === "serial") {
    pty = await openPtyPair();
    bridgePort = pty.b;
  }
  if (!bridgePort) throw new Error("mode port needs a serial port (device.port or --port)");
  const makeBridge = () =>
    new SerialBridge({ port: bridgePort!, baud: env.baud ?? 921600, mqttUrl: env.mqttUrl, log: env.log, reopenMs: 200 });
  let bridge = makeBridge();
  await bridge.start();
  let handle: SerialDeviceHandle | undefined;
  let readingsBefore = 0;
  // the boot counter survives restarts, like flash (else a restarted device's readings look like duplicates)
  const stateDir = pty ? mkdtempSync(join(tmpdir(), "hil-bench-state-")) : undefined;
  const startDevice = async () => {
    if (!pty) return;
    handle = await runSerialDevice({
      path: pty.a,
      kind: addr.kind,
      site: addr.site,
      id: addr.dev,
      seed: d.seed,
      accel: d.accel,
      pacing: d.pacing,
      ...(d.noise ? { noise: { bitErrorRate: d.noise.bit_error_rate, burstProb: d.noise.burst_prob } } : {}),
      firmware,
      ...(stateDir ? { stateDir } : {}),
      log: env.log,
    });
  };
  await startDevice();
  return {
    readings: () => readingsBefore + (handle?.device.counters.readings ?? 0),
    async restart() {
      if (!pty) {
        // a real board: ask it to reboot
        const c = await mqtt.connectAsync(env.mqttUrl, { clientId: `bench-reboot-${Date.now()}` });
        await c.publishAsync(commandTopic(addr, "reboot"), Buffer.from(encodeCbor({ id: `bench-${Date.now()}`, delay_ms: 0 })), {
          qos: 1,
        });
        await c.endAsync();
        return;
      }
      readingsBefore += handle?.device.counters.readings ?? 0;
      await handle?.kill();
      await startDevice();
    },
    async linkDown(ms) {
      await bridge.stop();
      await sleep(ms);
      bridge = makeBridge();
      await bridge.start();
    },
    async close() {
      await handle?.stop();
      await bridge.stop();
      await pty?.close();
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Run one scenario; never throws (a setup failure is a failed scenario). */
export async function runScenario(s: Scenario, env: BenchEnvironment, file?: string): Promise<ScenarioResult> {
  const started = Date.now();
  const d = s.device;
  const dev = d.id ?? `${d.kind === "sqal" ? "ESP32" : d.kind.toUpperCase()}_${d.site}_B${Math.floor(Math.random() * 1e6)}`;
  const addr: DeviceAddress = { site: d.site, kind: d.kind, dev };
  const vars: Record<string, string> = { dev, site: d.site, kind: d.kind, ...s.vars };
  const received: Received[] = [];
  const steps: StepResult[] = [];
  let client: MqttClient | undefined;
  let dut: Dut | undefined;
  let lastRestart = started;
  let previousStart = started;
  const result = (ok: boolean, error?: string): ScenarioResult => ({
    name: s.name,
    ...(file ? { file } : {}),
    ok,
    ms: Date.now() - started,
    steps,
    ...(error ? { error } : {}),
  });
  try {
    client = await mqtt.connectAsync(env.mqttUrl, { clientId: `bench-${dev}`, reconnectPeriod: 500 });
    client.on("message", (topic, payload) => {
      const dm = decodeMessage(topic, payload);
      const message = dm.ok
        ? dm.value.message
        : (() => {
            const c = decodeCbor(payload);
            return c.ok ? c.value : payload.toString("utf8");
          })();
      received.push({ topic, at: Date.now(), message });
    });
    await client.subscribeAsync([`${d.site}/${d.kind}/${dev}/#`, "svc/#"], { qos: 1 });
    dut = await startDut(s, addr, env);
    const deadline = started + s.timeout_s * 1000;
    for (const [index, raw] of s.steps.entries()) {
      const step = fill(raw, vars);
      const t0 = Date.now();
      let detail = "";
      let ok = true;
      try {
        if (Date.now() > deadline) throw new Error(`scenario timeout (${s.timeout_s} s) reached`);
        detail = await runStep(step, {
          env,
          dut,
          client,
          addr,
          received,
          t0,
          scenarioStart: started,
          previousStart,
          lastRestart: () => lastRestart,
        });
        if ("restart" in step) lastRestart = t0;
      } catch (e) {
        ok = false;
        detail = errorMessage(e);
      }
      steps.push({ index, name: stepName(step), ok, ms: Date.now() - t0, detail });
      previousStart = t0;
      if (!ok) return result(false);
    }
    return result(true);
  } catch (e) {
    return result(false, errorMessage(e));
  } finally {
    await dut?.close().catch(() => undefined);
    await client?.endAsync().catch(() => undefined);
  }
}

interface StepContext {
  env: BenchEnvironment;
  dut: Dut;
  client: MqttClient;
  addr: DeviceAddress;
  received: Received[];
  t0: number;
  scenarioStart: number;
  previousStart: number;
  lastRestart(): number;
}

async function waitForMessage(
  ctx: StepContext,
  filter: string,
  where: Record<string, Matcher>,
  count: number,
  withinS: number,
  since: number,
): Promise<Received[]> {
  const deadline = Date.now() + withinS * 1000;
  for (;;) {
    const hits = ctx.received.filter((r) => r.at >= since && topicMatches(filter, r.topic) && matches(r.message, where));
    if (hits.length >= count) return hits;
    if (Date.now() > deadline) {
      const near = ctx.received.filter((r) => r.at >= since && topicMatches(filter, r.topic)).slice(-1)[0];
      throw new Error(
        `expected ${count} message(s) on ${filter} matching ${JSON.stringify(where)} within ${withinS} s, got ${hits.length}` +
          (near
            ? `; last on that topic: ${JSON.stringify(near.message, (_k, v: unknown) => (ArrayBuffer.isView(v) ? `<${(v as Uint8Array).length} values>` : v)).slice(0, 300)}`
            : "; nothing on that topic"),
      );
    }
    await sleep(25);
  }
}

async function sendCommand(
  ctx: StepContext,
  name: string,
  args: Record<string, unknown>,
  expectOk: boolean,
  withinS: number,
): Promise<string> {
  const id = `bench-${name}-${ctx.t0}`;
  await ctx.client.publishAsync(commandTopic(ctx.addr, name), Buffer.from(encodeCbor({ ...args, id })), { qos: 1 });
  const [reply] = await waitForMessage(ctx, commandReplyTopic(ctx.addr, name), { id }, 1, withinS, ctx.t0);
  const ok = (reply!.message as { ok?: boolean }).ok;
  if (ok !== expectOk)
    throw new Error(`${name} replied ok=${String(ok)}: ${JSON.stringify((reply!.message as { err?: string }).err ?? "")}`);
  return `${name} → ok=${String(ok)}`;
}

async function runStep(step: Step, ctx: StepContext): Promise<string> {
  if ("restart" in step) {
    await ctx.dut.restart();
    return "device restarted";
  }
  if ("wait_online" in step) {
    const [m] = await waitForMessage(
      ctx,
      `${ctx.addr.site}/${ctx.addr.kind}/${ctx.addr.dev}/status`,
      { state: "online" },
      1,
      step.wait_online.within_s,
      ctx.lastRestart(),
    );
    return `online (boot ${String((m!.message as { boot?: number }).boot)})`;
  }
  if ("command" in step) {
    const c = step.command;
    return sendCommand(ctx, c.name, c.args, c.expect_ok, c.within_s);
  }
  if ("inject_fault" in step) {
    const f = step.inject_fault;
    return sendCommand(
      ctx,
      "fault",
      { action: "inject", fault: f.fault, ...(f.cycles ? { cycles: f.cycles } : {}) },
      true,
      f.within_s,
    );
  }
  if ("expect" in step) {
    const e = step.expect;
    const since =
      e.since === "scenario"
        ? ctx.scenarioStart
        : e.since === "restart"
          ? ctx.lastRestart()
          : e.since === "previous"
            ? ctx.previousStart
            : ctx.t0;
    const hits = await waitForMessage(ctx, e.topic, e.where, e.count, e.within_s, since);
    return `${hits.length} message(s) on ${e.topic}`;
  }
  if ("expect_rows" in step) {
    const e = step.expect_rows;
    const db = ctx.env.db;
    if (!db) throw new Error("expect_rows needs the database (run with --database-url or the embedded services)");
    const keys = Object.keys(e.where);
    const sql = `SELECT count(*)::int AS n FROM ${e.table}${keys.length ? ` WHERE ${keys.map((k, i) => `${k} = $${i + 1}`).join(" AND ")}` : ""}`;
    const deadline = Date.now() + e.within_s * 1000;
    for (;;) {
      const n =
        (
          await db.query<{ n: number }>(
            sql,
            keys.map((k) => e.where[k]),
          )
        ).rows[0]?.n ?? 0;
      const want = e.equals_device_readings ? ctx.dut.readings() : undefined;
      const okMin = e.min === undefined || n >= e.min;
      const okEq = want === undefined || n === want;
      if (okMin && okEq) return `${n} row(s) in ${e.table}${want !== undefined ? ` = device readings` : ""}`;
      if (Date.now() > deadline)
        throw new Error(
          `${e.table}: ${n} row(s)${e.min !== undefined ? `, want ≥ ${e.min}` : ""}${want !== undefined ? `, want exactly ${want} (device readings)` : ""}`,
        );
      await sleep(100);
    }
  }
  if ("link_down" in step) {
    await ctx.dut.linkDown(step.link_down.for_s * 1000);
    return `link cut for ${step.link_down.for_s} s and restored`;
  }
  if ("sleep" in step) {
    await sleep(step.sleep.s * 1000);
    return `slept ${step.sleep.s} s`;
  }
  const never: never = step;
  return never;
}

// ------------------------------------------------------------------------------------- reports

const esc = (s: string) =>
  s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);

/** JUnit XML: one testsuite per scenario, one testcase per step. */
export function junitXml(results: ScenarioResult[]): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const failures = results.reduce((n, r) => n + r.steps.filter((s) => !s.ok).length + (r.error ? 1 : 0), 0);
  const tests = results.reduce((n, r) => n + r.steps.length + (r.error ? 1 : 0), 0);
  lines.push(
    `<testsuites name="esp-fleet bench" tests="${tests}" failures="${failures}" time="${(results.reduce((n, r) => n + r.ms, 0) / 1000).toFixed(3)}">`,
  );
  for (const r of results) {
    const f = r.steps.filter((s) => !s.ok).length + (r.error ? 1 : 0);
    lines.push(
      `  <testsuite name="${esc(r.name)}" tests="${r.steps.length + (r.error ? 1 : 0)}" failures="${f}" time="${(r.ms / 1000).toFixed(3)}"${r.file ? ` file="${esc(r.file)}"` : ""}>`,
    );
    if (r.error)
      lines.push(`    <testcase name="setup" classname="${esc(r.name)}"><failure message="${esc(r.error)}"/></testcase>`);
    for (const s of r.steps) {
      const name = `${s.index + 1}. ${s.name}`;
      if (s.ok)
        lines.push(
          `    <testcase name="${esc(name)}" classname="${esc(r.name)}" time="${(s.ms / 1000).toFixed(3)}"><system-out>${esc(s.detail)}</system-out></testcase>`,
        );
      else
        lines.push(
          `    <testcase name="${esc(name)}" classname="${esc(r.name)}" time="${(s.ms / 1000).toFixed(3)}"><failure message="${esc(s.detail)}"/></testcase>`,
        );
    }
    lines.push("  </testsuite>");
  }
  lines.push("</testsuites>", "");
  return lines.join("\n");
}

export function textReport(results: ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`${r.ok ? "PASS" : "FAIL"}  ${r.name}${r.file ? `  (${r.file})` : ""}  ${(r.ms / 1000).toFixed(1)} s`);
    if (r.error) out.push(`      setup: ${r.error}`);
    for (const s of r.steps)
      out.push(
        `  ${s.ok ? "✓" : "✗"} ${String(s.index + 1).padStart(2)}. ${s.name.padEnd(13)} ${String(s.ms).padStart(6)} ms  ${s.detail}`,
      );
  }
  const passed = results.filter((r) => r.ok).length;
  out.push(`${passed}/${results.length} scenarios passed`);
  return out.join("\n");
}
