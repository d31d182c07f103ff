import { randomUUID } from "node:crypto";
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { z } from "zod";
import { Registry } from "prom-client";
import type { Logger } from "@esp-fleet/common/logger";
import { systemClock, type Clock, type Timer } from "@esp-fleet/common/clock";
import { BadInputError, FleetError, NotFoundError, errorMessage } from "@esp-fleet/common/errors";
import type { Db, Queryable } from "@esp-fleet/db";
import {
  CommandSchemas,
  commandTopic,
  decodeMessage,
  formatIssues,
  encodeCbor,
  envelopeMatchesTopic,
  filters,
  serviceTopic,
  type CommandReply,
  type DeviceKind,
  type DeviceTopic,
  type FeedingRecord,
  type FridgeReading,
  type Genetics,
  type Grade,
  type InspectionProfile,
  type LotStatus,
  type SqalSample,
  type Status,
} from "@esp-fleet/schemas";
import {
  CapabilityWindow,
  DEFAULT_THRESHOLDS,
  decideLot,
  gradeSample,
  type Capability,
  type GradeResult,
  type GradingThresholds,
  type LotRule,
} from "./grading/index.ts";
import {
  DIAGNOSIS_PROFILE,
  DiagnosisScorer,
  FleetDiagnosis,
  type DiagnosisProfile,
  type DiagnosisReport,
  type DiagnosisStep,
} from "./diagnosis/index.ts";
import { DEFAULT_PROFILE_RULE, inspectionProfile, type ProfileRule } from "./lots/profile.ts";
import { createSqalMetrics, type SqalMetrics } from "./metrics.ts";

export interface SqalOptions {
  db: Db;
  mqttUrl: string;
  credentials?: { username: string; password?: string | undefined } | undefined;
  /** Stable across restarts (persistent session). Default `esp-fleet-sqal`. */
  clientId?: string;
  logger: Logger;
  /** Prometheus registry (the shared HttpContext's). Default: a private one. */
  metrics?: Registry;
  /** Time for lot timestamps, retries and inspection deadlines. Default: the system clock. */
  clock?: Clock;
  thresholds?: GradingThresholds;
  /** The lot decision rule (default: no REJECT, ≥ 80 % B or better). */
  lotRule?: LotRule;
  profileRule?: ProfileRule;
  diagnosisProfile?: DiagnosisProfile;
  /** N samples per inspection (default 5). */
  samplesPerLot?: number;
  /** An inspection without N graded samples after this long fails (default 120 s). */
  inspectionTimeoutMs?: number;
  /** Attempts before `error` (default 3). */
  maxAttempts?: number;
  /** First retry delay, doubling per attempt (default 5 s), capped at `retryMaxMs` (default 5 min). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Wait this long when every station of the site is busy (default 1 s; not counted as an attempt). */
  busyRetryMs?: number;
  /** Messages handled per batch (default 500). */
  batchSize?: number;
  /** Received, not yet handled messages above which sqal stops reading from the broker (default 5000). */
  maxPending?: number;
  /** Extra MQTT.js options (tests). */
  mqttOptions?: Partial<IClientOptions>;
}

export interface SqalStats {
  received: number;
  graded: number;
  duplicates: number;
  invalid: number;
  errors: number;
  feedings: number;
  fridgeReadings: number;
  diagnosisEvents: number;
  lotsActive: number;
  connected: boolean;
}

export interface SqalService {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly db: Db;
  readonly mqttUrl: string;
  readonly clock: Clock;
  mqttConnected(): boolean;
  stats(): SqalStats;
  /** Re-inspect a decided (or failed) lot: it goes back to `pending`. */
  reinspect(code: string): Promise<{ lot: string; status: LotStatus }>;
  /** Diagnosis scored against ground truth so far, and the current state of every fridge. */
  diagnosis(): { report: DiagnosisReport; fridges: { dev: string; state: string; confidence: number }[] };
  /** Cp/Cpk of product thickness per station over its recent samples. */
  capability(): Record<string, Capability>;
  /** Resolves when every message and timer action queued so far has been processed (tests). */
  idle(): Promise<void>;
  /** Stations seen on retained `status` topics. */
  stations(): { dev: string; site: string; state: string; busy: boolean }[];
  /**
   * Send `cmd/{name}` to a registered device and wait for its `cmd/{name}/res` reply (the operator's
   * path to inject a fault, change the interval, reboot …). Throws NotFoundError for an unknown device,
   * BadInputError for arguments the command schema refuses, and a TIMEOUT FleetError without a reply.
   */
  sendCommand(dev: string, name: string, args: Record<string, unknown>, timeoutMs?: number): Promise<CommandReply>;
}

interface Inspection {
  id: number;
  n: number;
  station: string;
  cmdId: string;
  deadline: number;
  profile: InspectionProfile;
  counted: number;
}

/** The in-memory mirror of a `sqal_lots` row that is not decided yet. */
interface LotState {
  code: string;
  site: string;
  feederId: number | null;
  feeder: string | null;
  genetics: Genetics | null;
  initial: number | null;
  days: number | null;
  status: LotStatus;
  statusAt: number;
  feedings: number;
  lastDay: number | null;
  startWeight: number | null;
  weight: number | null;
  alive: number | null;
  mortality: number | null;
  readyAt: number | null;
  profile: InspectionProfile | null;
  samplesN: number | null;
  attempts: number;
  nextAttemptAt: number | null;
  inspectionId: number | null;
  station: string | null;
  decision: string | null;
  reason: string | null;
  inspection?: Inspection | undefined;
  timer?: Timer | undefined;
}

const ACTIVE: readonly LotStatus[] = ["feeding", "pending", "inspecting", "inspected"];

/**
 * Passed to MQTT.js's handleMessage callback: MQTT.js then skips its own PUBACK and reads the next
 * packet; the PUBACK is sent after the message's effects are committed.
 */
const DEFER_ACK = new Error("ack deferred until commit");
/** MQTT.js sends its PUBACKs through this (private) method; ours go the same way. */
interface PacketSender {
  _sendPacket(packet: { cmd: "puback"; messageId: number }, cb?: () => void): void;
}
const iso = (ms: number) => new Date(ms).toISOString();
const ms = (v: unknown): number | null => (v === null || v === undefined ? null : new Date(v as string | Date).getTime());

/**
 * The sqal service: grades every SQAL sample, builds lots from feeding records and drives their
 * inspection (`feeding → pending → inspecting → inspected → approved | rejected`, `error` after the
 * last failed attempt), and diagnoses fridges. One MQTT session (QoS 1, persistent), messages handled
 * one at a time and acknowledged after their effects are committed; timers (retries, inspection
 * deadlines) go through the same queue, so a lot is never touched by two actions at once.
 */
export function createSqal(o: SqalOptions): SqalService {
  const log = o.logger.child({ component: "sqal" });
  const db = o.db;
  const clock = o.clock ?? systemClock;
  const thresholds = o.thresholds ?? DEFAULT_THRESHOLDS;
  const lotRule = o.lotRule ?? thresholds.lot;
  const profileRule = o.profileRule ?? DEFAULT_PROFILE_RULE;
  const samplesPerLot = o.samplesPerLot ?? 5;
  const inspectionTimeoutMs = o.inspectionTimeoutMs ?? 120_000;
  const maxAttempts = o.maxAttempts ?? 3;
  const retryBaseMs = o.retryBaseMs ?? 5_000;
  const retryMaxMs = o.retryMaxMs ?? 300_000;
  const busyRetryMs = o.busyRetryMs ?? 1_000;
  const batchSize = o.batchSize ?? 500;
  const maxPending = o.maxPending ?? 5_000;
  const metrics: SqalMetrics = createSqalMetrics(o.metrics ?? new Registry(), db);
  const diagnosis = new FleetDiagnosis(o.diagnosisProfile ?? DIAGNOSIS_PROFILE);
  const scorer = new DiagnosisScorer(3);
  const capabilities = new Map<string, CapabilityWindow>();
  const lots = new Map<string, LotState>();
  const stationStates = new Map<string, { site: string; state: string }>();
  const stationLastUsed = new Map<string, number>();
  const stats = {
    received: 0,
    graded: 0,
    duplicates: 0,
    invalid: 0,
    errors: 0,
    feedings: 0,
    fridgeReadings: 0,
    diagnosisEvents: 0,
    rejects: 0,
    scoreSum: 0,
  };
  let client: MqttClient | undefined;
  let stopped = false;
  let chain: Promise<unknown> = Promise.resolve();

  /** Run `fn` after everything queued before it; failures are logged, never thrown into the queue. */
  function serial<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    const next = chain.then(async () => {
      if (stopped) return undefined;
      try {
        return await fn();
      } catch (err) {
        stats.errors++;
        log.error({ err, what }, "sqal action failed");
        return undefined;
      }
    });
    chain = next;
    return next;
  }

  function publish(topic: string, payload: unknown, retain = false): void {
    if (!client) return;
    // Never awaited: the PUBACK arrives on the incoming stream, which waits for the message being handled.
    client.publish(topic, Buffer.from(encodeCbor(payload)), { qos: 1, retain }, (err) => {
      if (err && !stopped) log.warn({ err, topic }, "publish failed");
    });
  }

  // ------------------------------------------------------------------------------------ inbox

  const inbox: { topic: string; payload: Buffer; messageId: number | undefined; stream: unknown }[] = [];
  const blocked: (() => void)[] = [];
  let pumping = false;

  /** One batch at a time goes through the serial queue (timers interleave between batches). */
  function pump(): void {
    if (pumping || inbox.length === 0 || stopped) return;
    pumping = true;
    setImmediate(() => {
      const batch = inbox.splice(0, batchSize);
      void serial("batch", () => processBatch(batch)).then(() => {
        ack(batch);
        pumping = false;
        while (blocked.length > 0 && inbox.length < maxPending) blocked.shift()!();
        pump();
      });
    });
  }

  function ack(batch: { messageId: number | undefined; stream: unknown }[]): void {
    const c = client;
    if (!c) return;
    for (const e of batch) {
      // a PUBACK only makes sense on the connection the message came on; after a reconnect the broker redelivers
      if (e.messageId === undefined || !c.connected || c.stream !== e.stream) continue;
      (c as unknown as PacketSender)._sendPacket({ cmd: "puback", messageId: e.messageId });
    }
  }

  // ------------------------------------------------------------------------------------ messages

  type Inbound = { topic: DeviceTopic; message: unknown };

  /** Decode and validate; undefined (counted, logged) when the message is refused or not for us. */
  function decode(topic: string, payload: Buffer): Inbound | undefined {
    stats.received++;
    const decoded = decodeMessage(topic, payload);
    if (!decoded.ok) {
      stats.invalid++;
      metrics.messages.inc({ kind: "unknown", outcome: "invalid" });
      log.warn({ topic, stage: decoded.error.stage, reason: decoded.error.error }, "message refused");
      return undefined;
    }
    const t = decoded.value.topic;
    if (t.type !== "device") return undefined;
    const mismatch = envelopeMatchesTopic(decoded.value);
    if (mismatch) {
      stats.invalid++;
      metrics.messages.inc({ kind: t.kind, outcome: "invalid" });
      log.warn({ topic, reason: mismatch }, "message refused");
      return undefined;
    }
    return { topic: t, message: decoded.value.message };
  }

  async function dispatch({ topic: t, message: m }: Inbound): Promise<void> {
    if (t.channel === "telemetry") {
      if (t.kind === "sqal") return onSample(t, m as SqalSample);
      if (t.kind === "gavage") return onFeeding(t, m as FeedingRecord);
      return onFridge(t, m as FridgeReading);
    }
    if (t.channel === "status" && t.kind === "sqal") return onStationStatus(t, m as Status);
    if (t.channel === "cmd_res") {
      const waiter = pendingCommands.get((m as CommandReply).id);
      if (waiter && waiter.dev === t.dev) {
        pendingCommands.delete((m as CommandReply).id);
        waiter.resolve(m as CommandReply);
        return;
      }
      if (t.kind === "sqal" && t.cmd === "inspect") return onInspectReply(t, m as CommandReply);
    }
  }

  /** Operator commands waiting for their reply, by command id. */
  const pendingCommands = new Map<string, { dev: string; resolve: (r: CommandReply) => void }>();

  /** Effects of a newly stored grade: metrics, capability, the published result. */
  function graded(s: SqalSample, result: GradeResult) {
    stats.graded++;
    metrics.messages.inc({ kind: "sqal", outcome: "ok" });
    metrics.samples.inc({ grade: result.grade });
    metrics.score.observe(result.score);
    stats.scoreSum += result.score;
    if (result.grade === "REJECT") stats.rejects++;
    metrics.rejectRate.set(stats.rejects / stats.graded);
    metrics.averageScore.set(stats.scoreSum / stats.graded);
    for (const d of result.tof.features.defects) metrics.defects.inc({ type: d.type });
    for (const a of result.alerts) metrics.alerts.inc({ level: a.level });
    let cw = capabilities.get(s.dev);
    if (!cw) capabilities.set(s.dev, (cw = new CapabilityWindow(thresholds.capability.window, thresholds)));
    cw.push(result.tof.features.thicknessMm);
    const cap = cw.get();
    if (cap.cpk !== null) metrics.cpk.set({ station: s.dev }, cap.cpk);
    const summary = {
      dev: s.dev,
      boot: s.boot,
      seq: s.seq,
      sample: s.sample,
      lot: s.lot,
      idx: s.idx,
      score: round4(result.score),
      grade: result.grade,
      tof: round4(result.tof.scores.score),
      spectral: round4(result.spectral.scores.score),
      thickness_mm: result.tof.features.thicknessMm,
      defects: result.tof.features.defects.length,
      alerts: result.alerts.map((a) => a.level),
      ts: s.ts,
    };
    publish(serviceTopic("sqal", "samples", s.dev), summary);
    return summary;
  }

  /**
   * Handle a batch of messages in arrival order, except that the routine SQAL samples (not part of a
   * lot inspection — they touch no lot state) are graded and stored with one multi-row INSERT.
   */
  async function processBatch(batch: { topic: string; payload: Buffer }[]): Promise<void> {
    const routine: { site: string; sample: SqalSample; result: GradeResult }[] = [];
    const ordered: Inbound[] = [];
    for (const e of batch) {
      const m = decode(e.topic, e.payload);
      if (!m) continue;
      if (m.topic.channel === "telemetry" && m.topic.kind === "sqal" && (m.message as SqalSample).lot === undefined) {
        const sample = m.message as SqalSample;
        routine.push({ site: m.topic.site, sample, result: gradeSample(sample, thresholds) });
      } else ordered.push(m);
    }
    if (routine.length > 0) {
      try {
        const inserted = await withRetry("store grades", () => insertGrades(db, routine, clock.now()));
        for (const r of routine) {
          if (inserted.has(`${r.sample.dev}/${r.sample.boot}/${r.sample.seq}`)) graded(r.sample, r.result);
          else {
            stats.duplicates++;
            metrics.messages.inc({ kind: "sqal", outcome: "duplicate" });
          }
        }
      } catch (err) {
        stats.errors += routine.length;
        metrics.messages.inc({ kind: "sqal", outcome: "error" }, routine.length);
        log.error({ err, samples: routine.length }, "grades could not be stored");
      }
    }
    for (const m of ordered) {
      try {
        await withRetry("handle message", () => dispatch(m));
      } catch (err) {
        stats.errors++;
        metrics.messages.inc({ kind: m.topic.kind, outcome: "error" });
        log.error({ err, dev: m.topic.dev, channel: m.topic.channel }, "message could not be handled");
      }
    }
  }

  /** Retry a database action a few times (a dropped connection, a deadlock) before giving up. */
  async function withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= 4 || stopped) throw err;
        log.warn({ err, what, attempt }, "retrying");
        await new Promise((r) => setTimeout(r, 100 * 4 ** (attempt - 1)));
      }
    }
  }

  async function onSample(t: DeviceTopic, s: SqalSample): Promise<void> {
    const result = gradeSample(s, thresholds);
    const lot = s.lot ? lots.get(s.lot) : undefined;
    const insp =
      lot &&
      lot.status === "inspecting" &&
      lot.inspection &&
      lot.inspection.station === s.dev &&
      s.idx !== undefined &&
      s.idx < lot.inspection.n
        ? lot.inspection
        : undefined;
    let inserted = await insertGrade(db, t.site, s, result, insp?.id ?? null, clock.now());
    let counts = insp !== undefined;
    if (!inserted && insp) {
      // this index of the inspection was already graded (a station measuring it twice): keep the sample, do not count it
      inserted = await insertGrade(db, t.site, s, result, null, clock.now());
      counts = false;
    }
    if (!inserted) {
      stats.duplicates++;
      metrics.messages.inc({ kind: "sqal", outcome: "duplicate" });
      return;
    }
    const summary = graded(s, result);
    if (s.lot && insp && lot && counts) {
      publish(serviceTopic("sqal", "lots", lot.code, "samples"), summary);
      insp.counted = await countInspection(db, insp.id);
      if (insp.counted >= insp.n) await completeInspection(lot, insp);
    }
  }

  async function onFeeding(t: DeviceTopic, r: FeedingRecord): Promise<void> {
    const inserted = await db.query(
      `INSERT INTO sqal_lot_feedings (dev, boot, seq, lot, ts, day, moment, dose_th, dose, weight, alive, mortality, pen_t, pen_rh, ready)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) ON CONFLICT DO NOTHING`,
      [
        r.dev,
        r.boot,
        r.seq,
        r.lot,
        iso(r.ts),
        r.day,
        r.moment,
        r.dose_th,
        r.dose,
        r.weight,
        r.alive,
        r.mortality,
        r.pen_t,
        r.pen_rh,
        r.ready,
      ],
    );
    if (inserted.rowCount === 0) {
      stats.duplicates++;
      metrics.messages.inc({ kind: "gavage", outcome: "duplicate" });
      return;
    }
    stats.feedings++;
    metrics.messages.inc({ kind: "gavage", outcome: "ok" });
    let lot = lots.get(r.lot) ?? (await loadLot(r.lot));
    const now = clock.now();
    if (!lot) {
      lot = {
        code: r.lot,
        site: r.site || t.site,
        feederId: r.feeder_id,
        feeder: r.feeder,
        genetics: r.genetics,
        initial: r.initial,
        days: r.days,
        status: "feeding",
        statusAt: now,
        feedings: 0,
        lastDay: null,
        startWeight: r.weight,
        weight: null,
        alive: null,
        mortality: null,
        readyAt: null,
        profile: null,
        samplesN: null,
        attempts: 0,
        nextAttemptAt: null,
        inspectionId: null,
        station: null,
        decision: null,
        reason: null,
      };
      const created = lot;
      await db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO sqal_lots (code, site, feeder_id, feeder, genetics, initial, days, status, status_at, created_at, start_weight)
           VALUES ($1,$2,$3,$4,$5,$6,$7,'feeding',$8,$8,$9) ON CONFLICT (code) DO NOTHING`,
          [
            created.code,
            created.site,
            created.feederId,
            created.feeder,
            created.genetics,
            created.initial,
            created.days,
            iso(now),
            r.weight,
          ],
        );
        await tx.query(
          `INSERT INTO sqal_lot_transitions (lot, from_status, to_status, at, reason) VALUES ($1, NULL, 'feeding', $2, $3)`,
          [created.code, iso(now), `first feeding record from ${r.dev}`],
        );
      });
      lots.set(lot.code, lot);
      metrics.transitions.inc({ to: "feeding" });
      publishStatus(lot, null);
    }
    lot.feedings++;
    if (lot.lastDay === null || r.day >= lot.lastDay) {
      lot.lastDay = r.day;
      lot.weight = r.weight;
      lot.alive = r.alive;
      lot.mortality = r.mortality;
    }
    if (!ACTIVE.includes(lot.status)) {
      // a late feeding record of a lot already decided: keep the record, leave the lot alone
      await db.query("UPDATE sqal_lots SET feedings = feedings + 1 WHERE code = $1", [lot.code]);
      return;
    }
    if (r.ready && lot.status === "feeding") {
      lot.readyAt = now;
      lot.profile = inspectionProfile(
        lot.genetics ?? "mulard",
        lot.weight ?? r.weight,
        lot.mortality ?? r.mortality,
        profileRule,
      );
      lot.samplesN = samplesPerLot;
      await transition(
        lot,
        "pending",
        `ready for slaughter: ${Math.round(r.weight)} g, mortality ${r.mortality.toFixed(1)} % → ${lot.profile}`,
      );
      await attempt(lot);
    } else {
      await saveLot(db, lot);
    }
  }

  async function onFridge(t: DeviceTopic, r: FridgeReading): Promise<void> {
    stats.fridgeReadings++;
    metrics.messages.inc({ kind: "fridge", outcome: "ok" });
    const step: DiagnosisStep = diagnosis.observe(r.dev, r);
    const truth = r.sim ? (r.sim.fault ?? null) : undefined;
    if (truth !== undefined) {
      scorer.record(r.dev, truth, step.state);
      metrics.confusion.inc({ truth: truth ?? "normal", diagnosis: step.state });
      const rep = scorer.report();
      metrics.diagnosisIdentified.set(rep.identifiedRate);
      metrics.diagnosisFalseAlarms.set(rep.falseAlarmRate);
    }
    if (!step.event) return;
    const e = step.event;
    stats.diagnosisEvents++;
    metrics.diagnosisEvents.inc({ type: e.type, fault: e.fault });
    const at = clock.now();
    await db.query(
      `INSERT INTO sqal_diagnosis_events (dev, site, at, type, fault, previous, confidence, truth) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
      [
        r.dev,
        t.site,
        iso(at),
        e.type,
        e.fault,
        e.previous ?? null,
        e.confidence,
        truth === undefined ? null : (truth ?? "normal"),
      ],
    );
    publish(
      serviceTopic("sqal", "fridges", r.dev, "diagnosis"),
      {
        dev: r.dev,
        state: step.state,
        confidence: round4(step.confidence),
        event: e.type,
        fault: e.fault,
        previous: e.previous,
        at,
        reading: { boot: r.boot, seq: r.seq },
      },
      true,
    );
    log.info({ dev: r.dev, event: e.type, fault: e.fault, confidence: round4(e.confidence) }, "fridge diagnosis");
  }

  async function onStationStatus(t: DeviceTopic, s: Status): Promise<void> {
    const before = stationStates.get(t.dev)?.state;
    stationStates.set(t.dev, { site: t.site, state: s.state });
    if (s.state === "online" && before !== "online") await kickSite(t.site); // lots waiting at its site try now
    if (s.state !== "online") {
      for (const lot of lots.values()) {
        if (lot.status === "inspecting" && lot.inspection?.station === t.dev) {
          await failInspection(lot, "station_offline", `station ${t.dev} went ${s.state}${s.reason ? ` (${s.reason})` : ""}`);
        }
      }
    }
  }

  async function onInspectReply(t: DeviceTopic, r: CommandReply): Promise<void> {
    for (const lot of lots.values()) {
      const insp = lot.inspection;
      if (lot.status !== "inspecting" || !insp || insp.cmdId !== r.id) continue;
      if (r.ok) {
        await db.query("UPDATE sqal_inspections SET accepted_at = $2 WHERE id = $1", [insp.id, iso(clock.now())]);
        log.debug({ lot: lot.code, station: t.dev }, "inspection accepted");
      } else {
        await failInspection(lot, "refused", `station ${t.dev} refused: ${r.err ?? "no reason given"}`);
      }
      return;
    }
  }

  // ------------------------------------------------------------------------------------ lot life cycle

  function publishStatus(lot: LotState, from: LotStatus | null): void {
    publish(
      serviceTopic("sqal", "lots", lot.code, "status"),
      {
        lot: lot.code,
        status: lot.status,
        from,
        at: lot.statusAt,
        site: lot.site,
        reason: lot.reason,
        attempts: lot.attempts,
        station: lot.station,
        inspection: lot.inspectionId,
        profile: lot.profile,
        n: lot.samplesN,
        decision: lot.decision,
      },
      true,
    );
  }

  async function transition(lot: LotState, to: LotStatus, reason: string | null, tx?: Queryable): Promise<void> {
    const from = lot.status;
    const at = clock.now();
    lot.status = to;
    lot.statusAt = at;
    lot.reason = reason;
    const write = async (q: Queryable) => {
      await saveLot(q, lot);
      await q.query(`INSERT INTO sqal_lot_transitions (lot, from_status, to_status, at, reason) VALUES ($1,$2,$3,$4,$5)`, [
        lot.code,
        from,
        to,
        iso(at),
        reason,
      ]);
    };
    if (tx) await write(tx);
    else await db.transaction(write);
    metrics.transitions.inc({ to });
    publishStatus(lot, from);
    log.info({ lot: lot.code, from, to, reason }, "lot status");
    if (!ACTIVE.includes(to)) {
      lot.timer?.cancel();
      lots.delete(lot.code);
    }
  }

  function schedule(lot: LotState, at: number, what: string, fn: () => Promise<void>): void {
    lot.timer?.cancel();
    lot.timer = clock.setTimeout(
      () => {
        void serial(what, async () => {
          if (lots.get(lot.code) === lot) await fn();
        });
      },
      Math.max(0, at - clock.now()),
    );
  }

  function backoff(attempts: number): number {
    return Math.min(retryMaxMs, retryBaseMs * 2 ** Math.max(0, attempts - 1));
  }

  /** A station of `site` is free (or came online): pending lots there try now, oldest ready first. */
  async function kickSite(site: string): Promise<void> {
    const waiting = [...lots.values()]
      .filter((l) => l.status === "pending" && l.site === site && (l.nextAttemptAt === null || l.nextAttemptAt <= clock.now()))
      .sort((a, b) => (a.readyAt ?? a.statusAt) - (b.readyAt ?? b.statusAt));
    for (const lot of waiting) {
      lot.timer?.cancel();
      await attempt(lot);
      if (lot.status === "pending") break; // no free station left
    }
  }

  async function attemptFailed(lot: LotState, reason: string): Promise<void> {
    if (lot.attempts >= maxAttempts) {
      await transition(lot, "error", `${reason}; gave up after ${lot.attempts} attempt(s)`);
      return;
    }
    const at = clock.now() + backoff(lot.attempts);
    lot.nextAttemptAt = at;
    if (lot.status === "inspecting") {
      lot.inspection = undefined;
      await transition(lot, "pending", `${reason}; retry ${lot.attempts + 1}/${maxAttempts} at ${iso(at)}`);
    } else {
      lot.reason = `${reason}; retry ${lot.attempts + 1}/${maxAttempts} at ${iso(at)}`;
      await saveLot(db, lot);
      publishStatus(lot, lot.status);
    }
    schedule(lot, at, "lot retry", () => attempt(lot));
  }

  /** A pending lot: find a station and send it `cmd/inspect`. */
  async function attempt(lot: LotState): Promise<void> {
    if (lot.status !== "pending") return;
    const online = [...stationStates].filter(([, s]) => s.site === lot.site && s.state === "online").map(([dev]) => dev);
    if (online.length === 0) {
      lot.attempts++;
      metrics.inspections.inc({ outcome: "no_station" });
      await attemptFailed(lot, `no online SQAL station at site ${lot.site}`);
      return;
    }
    const busy = new Set(
      [...lots.values()].filter((l) => l.status === "inspecting" && l.inspection).map((l) => l.inspection!.station),
    );
    const free = online
      .filter((d) => !busy.has(d))
      .sort((a, b) => (stationLastUsed.get(a) ?? 0) - (stationLastUsed.get(b) ?? 0) || a.localeCompare(b));
    const station = free[0];
    if (!station) {
      // every station of the site is busy: the next one to finish calls `kickSite`; this is a fallback
      schedule(lot, clock.now() + busyRetryMs, "lot wait for station", () => attempt(lot));
      return;
    }
    lot.attempts++;
    const now = clock.now();
    const n = lot.samplesN ?? samplesPerLot;
    const profile = lot.profile ?? "standard";
    const deadline = now + inspectionTimeoutMs;
    await db.transaction(async (tx) => {
      const r = await tx.query<{ id: number }>(
        `INSERT INTO sqal_inspections (lot, attempt, station, site, cmd_id, n, profile, requested_at, deadline_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id`,
        [lot.code, lot.attempts, station, lot.site, `${lot.code}-${now}-${lot.attempts}`, n, profile, iso(now), iso(deadline)],
      );
      const id = Number(r.rows[0]!.id);
      const cmdId = `insp-${id}`;
      await tx.query("UPDATE sqal_inspections SET cmd_id = $2 WHERE id = $1", [id, cmdId]);
      lot.inspection = { id, n, station, cmdId, deadline, profile, counted: 0 };
      lot.inspectionId = id;
      lot.station = station;
      lot.nextAttemptAt = null;
      await transition(
        lot,
        "inspecting",
        `cmd/inspect ${cmdId} sent to ${station} (attempt ${lot.attempts}/${maxAttempts}, n=${n}, ${profile})`,
        tx,
      );
    });
    stationLastUsed.set(station, now);
    const insp = lot.inspection!;
    publish(commandTopic({ site: lot.site, kind: "sqal", dev: station }, "inspect"), {
      id: insp.cmdId,
      lot: lot.code,
      n,
      profile,
    });
    schedule(lot, deadline, "inspection deadline", () =>
      failInspection(
        lot,
        "timeout",
        `inspection ${insp.cmdId} by ${station}: ${insp.counted}/${n} samples after ${inspectionTimeoutMs} ms`,
      ),
    );
  }

  async function failInspection(lot: LotState, outcome: string, reason: string): Promise<void> {
    const insp = lot.inspection;
    if (lot.status !== "inspecting" || !insp) return;
    lot.timer?.cancel();
    await db.query("UPDATE sqal_inspections SET finished_at = $2, outcome = $3, error = $4 WHERE id = $1", [
      insp.id,
      iso(clock.now()),
      outcome,
      reason,
    ]);
    metrics.inspections.inc({ outcome });
    log.warn({ lot: lot.code, station: insp.station, outcome, reason }, "inspection failed");
    await attemptFailed(lot, reason);
    await kickSite(lot.site);
  }

  async function completeInspection(lot: LotState, insp: Inspection): Promise<void> {
    lot.timer?.cancel();
    const r = await db.query<{ grade: Grade; score: number }>(
      "SELECT grade, score FROM sqal_grades WHERE inspection_id = $1 ORDER BY idx",
      [insp.id],
    );
    const verdict = decideLot(
      r.rows.map((x) => x.grade),
      lotRule,
    );
    const avg = r.rows.reduce((a, x) => a + Number(x.score), 0) / Math.max(1, r.rows.length);
    await db.transaction(async (tx) => {
      await tx.query("UPDATE sqal_inspections SET finished_at = $2, outcome = 'done' WHERE id = $1", [insp.id, iso(clock.now())]);
      lot.inspection = undefined;
      await transition(lot, "inspected", `${r.rows.length} samples graded by ${insp.station}`, tx);
      lot.decision = verdict.decision;
      await transition(lot, verdict.decision, verdict.reason, tx);
    });
    metrics.inspections.inc({ outcome: "done" });
    await kickSite(lot.site);
    publish(
      serviceTopic("sqal", "lots", lot.code, "grade"),
      {
        lot: lot.code,
        decision: verdict.decision,
        reason: verdict.reason,
        counts: verdict.counts,
        good_share: verdict.goodShare,
        average_score: round4(avg),
        n: r.rows.length,
        inspection: insp.id,
        station: insp.station,
      },
      true,
    );
  }

  async function loadLot(code: string): Promise<LotState | undefined> {
    const r = await db.query<Record<string, unknown>>("SELECT * FROM sqal_lots WHERE code = $1", [code]);
    const row = r.rows[0];
    return row ? lotFromRow(row) : undefined;
  }

  /**
   * After a restart, part 1 (before any message is handled): load every lot that is not decided yet,
   * with its current inspection, so samples redelivered from the persistent session count for it.
   */
  async function load(): Promise<void> {
    const r = await db.query<Record<string, unknown>>(
      `SELECT * FROM sqal_lots WHERE status IN ('feeding','pending','inspecting','inspected')`,
    );
    for (const row of r.rows) {
      const lot = lotFromRow(row);
      lots.set(lot.code, lot);
      if ((lot.status === "inspecting" || lot.status === "inspected") && lot.inspectionId !== null) {
        const ir = await db.query<Record<string, unknown>>("SELECT * FROM sqal_inspections WHERE id = $1", [lot.inspectionId]);
        const i = ir.rows[0];
        if (!i) continue;
        lot.inspection = {
          id: Number(i.id),
          n: Number(i.n),
          station: String(i.station),
          cmdId: String(i.cmd_id),
          deadline: ms(i.deadline_at) ?? clock.now(),
          profile: i.profile as InspectionProfile,
          counted: await countInspection(db, Number(i.id)),
        };
      }
    }
    if (r.rows.length > 0) log.info({ lots: r.rows.length }, "loaded lots in progress");
  }

  /** After a restart, part 2 (once station statuses are in): retry, complete or re-arm deadlines. */
  async function resume(): Promise<void> {
    for (const lot of [...lots.values()]) {
      if (lot.status === "pending") {
        schedule(lot, Math.max(clock.now(), lot.nextAttemptAt ?? 0), "lot resume", () => attempt(lot));
      } else if (lot.status === "inspecting" || lot.status === "inspected") {
        const insp = lot.inspection;
        if (!insp) {
          await transition(lot, "pending", "inspection record missing after restart");
          await attempt(lot);
        } else if (insp.counted >= insp.n || lot.status === "inspected") {
          lot.status = "inspecting";
          await completeInspection(lot, insp);
        } else {
          schedule(lot, insp.deadline, "inspection deadline", () =>
            failInspection(
              lot,
              "timeout",
              `inspection ${insp.cmdId} by ${insp.station}: ${insp.counted}/${insp.n} samples by the deadline`,
            ),
          );
        }
      }
    }
  }

  // ------------------------------------------------------------------------------------ service

  return {
    db,
    mqttUrl: o.mqttUrl,
    clock,
    async start() {
      await db.query("SELECT 1 FROM sqal_lots LIMIT 1").catch((err: unknown) => {
        throw new FleetError("UNAVAILABLE", `sqal tables missing — run the migrations first (${errorMessage(err)})`);
      });
      stopped = false;
      await serial("load", load);
      client = mqtt.connect(o.mqttUrl, {
        clientId: o.clientId ?? "esp-fleet-sqal",
        clean: false,
        username: o.credentials?.username,
        password: o.credentials?.password,
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
        ...o.mqttOptions,
      });
      // Ack after the effects are committed (DESIGN §9): MQTT.js's own PUBACK is skipped (DEFER_ACK) so
      // it reads on while the messages wait in the inbox; each batch is acknowledged once handled.
      client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
        inbox.push({ topic: packet.topic, payload, messageId: packet.messageId, stream: client?.stream });
        if (inbox.length >= maxPending) blocked.push(() => done(DEFER_ACK));
        else done(DEFER_ACK);
        pump();
      };
      client.on("error", (err) => log.warn({ err }, "mqtt error"));
      const c = client;
      await new Promise<void>((resolve, reject) => {
        const onErr = (err: Error) => reject(new FleetError("UNAVAILABLE", `cannot connect to ${o.mqttUrl}: ${err.message}`));
        c.once("connect", () => {
          c.off("error", onErr);
          resolve();
        });
        c.once("error", onErr);
      });
      const subs = [
        filters.telemetry("sqal"),
        filters.telemetry("gavage"),
        filters.telemetry("fridge"),
        filters.channel("status", "sqal"),
        filters.commandReplies(),
      ];
      await c.subscribeAsync(subs, { qos: 1 });
      // Retained station statuses arrive right after the SUBACK; give them a moment before resuming lots.
      await new Promise((r) => setTimeout(r, 200));
      await serial("resume", resume);
      log.info({ url: o.mqttUrl, subs }, "sqal started");
    },
    async stop() {
      for (const lot of lots.values()) lot.timer?.cancel();
      // handle what was received (acknowledging it), then leave
      for (let i = 0; i < 100 && (inbox.length > 0 || pumping); i++) await new Promise((r) => setTimeout(r, 20));
      await chain;
      stopped = true;
      const c = client;
      client = undefined;
      // Without a connection, a graceful end would wait forever for in-flight publishes to be
      // acknowledged: force it. Grades are already stored; only their svc/ notifications are not sent.
      if (c) await c.endAsync(!c.connected);
    },
    mqttConnected: () => client?.connected ?? false,
    stats: () => ({
      received: stats.received,
      graded: stats.graded,
      duplicates: stats.duplicates,
      invalid: stats.invalid,
      errors: stats.errors,
      feedings: stats.feedings,
      fridgeReadings: stats.fridgeReadings,
      diagnosisEvents: stats.diagnosisEvents,
      lotsActive: lots.size,
      connected: client?.connected ?? false,
    }),
    async sendCommand(dev, name, args, timeoutMs = 10_000) {
      const schema = (CommandSchemas as Record<string, z.ZodType>)[name];
      if (!schema)
        throw new BadInputError(`unknown command ${JSON.stringify(name)}; one of ${Object.keys(CommandSchemas).join(", ")}`);
      const found = await o.db.query<{ kind: DeviceKind; site: string }>("SELECT kind, site FROM devices WHERE id = $1", [dev]);
      const addr = found.rows[0];
      if (!addr) throw new NotFoundError(`device ${dev} is not registered`);
      const id = `op-${randomUUID()}`;
      const parsed = schema.safeParse({ ...args, id });
      if (!parsed.success) throw new BadInputError(`cmd/${name}: ${formatIssues(parsed.error)}`);
      if (!client?.connected) throw new FleetError("UNAVAILABLE", "sqal is not connected to the broker");
      const reply = new Promise<CommandReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          pendingCommands.delete(id);
          reject(new FleetError("TIMEOUT", `no reply to cmd/${name} from ${dev} within ${timeoutMs} ms`));
        }, timeoutMs);
        pendingCommands.set(id, {
          dev,
          resolve: (r) => {
            clearTimeout(timer);
            resolve(r);
          },
        });
      });
      publish(commandTopic({ site: addr.site, kind: addr.kind, dev }, name), parsed.data);
      return reply;
    },
    async reinspect(code) {
      const result = await serial("reinspect", async () => {
        const lot = lots.get(code) ?? (await loadLot(code));
        if (!lot) return new NotFoundError(`lot ${code} not found`);
        if (ACTIVE.includes(lot.status))
          return new FleetError(
            "CONFLICT",
            `lot ${code} is ${lot.status}: only an approved, rejected or failed lot can be re-inspected`,
          );
        lots.set(code, lot);
        lot.attempts = 0;
        lot.decision = null;
        lot.samplesN = lot.samplesN ?? samplesPerLot;
        lot.profile =
          lot.profile ?? inspectionProfile(lot.genetics ?? "mulard", lot.weight ?? 0, lot.mortality ?? 100, profileRule);
        await transition(lot, "pending", "re-inspection requested");
        await attempt(lot);
        return { lot: code, status: lot.status };
      });
      if (result instanceof Error) throw result;
      if (!result) throw new FleetError("UNAVAILABLE", "sqal is stopping");
      return result;
    },
    diagnosis: () => ({ report: scorer.report(), fridges: diagnosis.states() }),
    capability: () => Object.fromEntries([...capabilities].map(([dev, w]) => [dev, w.get()])),
    idle: async () => {
      while (inbox.length > 0 || pumping) await new Promise((r) => setTimeout(r, 10));
      await serial("idle", async () => undefined);
    },
    stations: () => {
      const busy = new Set(
        [...lots.values()].filter((l) => l.status === "inspecting" && l.inspection).map((l) => l.inspection!.station),
      );
      return [...stationStates].map(([dev, s]) => ({ dev, site: s.site, state: s.state, busy: busy.has(dev) }));
    },
  };
}

// ------------------------------------------------------------------------------------------ SQL

function lotFromRow(row: Record<string, unknown>): LotState {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    code: String(row.code),
    site: String(row.site),
    feederId: num(row.feeder_id),
    feeder: (row.feeder as string | null) ?? null,
    genetics: (row.genetics as Genetics | null) ?? null,
    initial: num(row.initial),
    days: num(row.days),
    status: row.status as LotStatus,
    statusAt: ms(row.status_at) ?? 0,
    feedings: Number(row.feedings ?? 0),
    lastDay: num(row.last_day),
    startWeight: num(row.start_weight),
    weight: num(row.weight),
    alive: num(row.alive),
    mortality: num(row.mortality),
    readyAt: ms(row.ready_at),
    profile: (row.profile as InspectionProfile | null) ?? null,
    samplesN: num(row.samples_n),
    attempts: Number(row.attempts ?? 0),
    nextAttemptAt: ms(row.next_attempt_at),
    inspectionId: num(row.inspection_id),
    station: (row.station as string | null) ?? null,
    decision: (row.decision as string | null) ?? null,
    reason: (row.reason as string | null) ?? null,
  };
}

async function saveLot(q: Queryable, l: LotState): Promise<void> {
  await q.query(
    `UPDATE sqal_lots SET status = $2, status_at = $3, feedings = $4, last_day = $5, weight = $6, alive = $7, mortality = $8,
       ready_at = $9, profile = $10, samples_n = $11, attempts = $12, next_attempt_at = $13, inspection_id = $14, station = $15,
       decision = $16, reason = $17
     WHERE code = $1`,
    [
      l.code,
      l.status,
      iso(l.statusAt),
      l.feedings,
      l.lastDay,
      l.weight,
      l.alive,
      l.mortality,
      l.readyAt === null ? null : iso(l.readyAt),
      l.profile,
      l.samplesN,
      l.attempts,
      l.nextAttemptAt === null ? null : iso(l.nextAttemptAt),
      l.inspectionId,
      l.station,
      l.decision,
      l.reason,
    ],
  );
}

async function countInspection(q: Queryable, id: number): Promise<number> {
  const r = await q.query<{ n: number }>("SELECT count(*)::int AS n FROM sqal_grades WHERE inspection_id = $1", [id]);
  return Number(r.rows[0]?.n ?? 0);
}

const GRADE_INSERT_COLUMNS = `dev, boot, seq, ts, graded_at, site, sample, lot, idx, inspection_id, score, grade, tof_score, spectral_score,
  thickness_mm, thickness_class, volume_mm3, liver_weight_g, defects, alert, features, alerts, sim_tier`;

function gradeParams(site: string, s: SqalSample, g: GradeResult, inspectionId: number | null, now: number): unknown[] {
  const f = g.tof.features;
  const features = {
    tof: { ...f, scores: g.tof.scores },
    spectral: {
      ratios: g.spectral.features.ratios,
      sub_scores: g.spectral.features.subScores,
      normalized: g.spectral.features.normalized,
      anomalies: g.spectral.features.anomalies,
      scores: g.spectral.scores,
    },
  };
  const alert = g.alerts.some((a) => a.level === "critical") ? "critical" : g.alerts.length > 0 ? "warning" : null;
  return [
    s.dev,
    s.boot,
    s.seq,
    iso(s.ts),
    iso(now),
    site,
    s.sample,
    s.lot ?? null,
    s.idx ?? null,
    inspectionId,
    g.score,
    g.grade,
    g.tof.scores.score,
    g.spectral.scores.score,
    f.thicknessMm,
    f.thicknessClass,
    f.volumeMm3,
    f.liverWeightG,
    f.defects.length,
    alert,
    JSON.stringify(features, finiteOnly),
    JSON.stringify(g.alerts),
    s.sim?.tier ?? null,
  ];
}

/** Store a grade; false when this (dev, boot, seq) — or this inspection index — was graded before. */
export async function insertGrade(
  q: Queryable,
  site: string,
  s: SqalSample,
  g: GradeResult,
  inspectionId: number | null,
  now: number,
): Promise<boolean> {
  const params = gradeParams(site, s, g, inspectionId, now);
  const r = await q.query(
    `INSERT INTO sqal_grades (${GRADE_INSERT_COLUMNS}) VALUES (${params.map((_, i) => `$${i + 1}`).join(",")}) ON CONFLICT DO NOTHING`,
    params,
  );
  return r.rowCount > 0;
}

const GRADE_COLUMNS = 23;

/** Store many grades in one statement; returns the `dev/boot/seq` keys actually inserted (new). */
export async function insertGrades(
  q: Queryable,
  rows: readonly { site: string; sample: SqalSample; result: GradeResult }[],
  now: number,
): Promise<Set<string>> {
  const params: unknown[] = [];
  const values: string[] = [];
  for (const r of rows) {
    const base = params.length;
    params.push(...gradeParams(r.site, r.sample, r.result, null, now));
    values.push(`(${Array.from({ length: GRADE_COLUMNS }, (_, i) => `$${base + i + 1}`).join(",")})`);
  }
  const res = await q.query<{ dev: string; boot: number; seq: number }>(
    `INSERT INTO sqal_grades (${GRADE_INSERT_COLUMNS}) VALUES ${values.join(",")} ON CONFLICT DO NOTHING RETURNING dev, boot, seq`,
    params,
  );
  return new Set(res.rows.map((r) => `${r.dev}/${Number(r.boot)}/${Number(r.seq)}`));
}

/** JSON has no Infinity/NaN (a ratio with a zero denominator): store them as null. */
function finiteOnly(_key: string, v: unknown): unknown {
  return typeof v === "number" && !Number.isFinite(v) ? null : v;
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
