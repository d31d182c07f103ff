import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { GRADES, LOT_STATUSES } from "@esp-fleet/schemas";
import type { Db } from "@esp-fleet/db";

/** The sqal service's Prometheus metrics (registered on the shared HttpContext registry). */
export function createSqalMetrics(registry: Registry, db: Db) {
  const registers = [registry];
  const samples = new Counter({
    name: "esp_fleet_sqal_samples_total",
    help: "graded SQAL samples by grade",
    labelNames: ["grade"],
    registers,
  });
  const score = new Histogram({
    name: "esp_fleet_sqal_score",
    help: "final sample score (0..1); average = sum / count",
    buckets: [0.45, 0.6, 0.75, 0.85],
    registers,
  });
  const rejectRate = new Gauge({ name: "esp_fleet_sqal_reject_rate", help: "share of graded samples graded REJECT", registers });
  const averageScore = new Gauge({ name: "esp_fleet_sqal_average_score", help: "mean final score of graded samples", registers });
  const defects = new Counter({
    name: "esp_fleet_sqal_defects_total",
    help: "ToF defects found, by type",
    labelNames: ["type"],
    registers,
  });
  const alerts = new Counter({
    name: "esp_fleet_sqal_alerts_total",
    help: "sample alerts by level",
    labelNames: ["level"],
    registers,
  });
  const messages = new Counter({
    name: "esp_fleet_sqal_messages_total",
    help: "messages handled by sqal, by kind and outcome (ok, duplicate, invalid, error)",
    labelNames: ["kind", "outcome"],
    registers,
  });
  const transitions = new Counter({
    name: "esp_fleet_sqal_lot_transitions_total",
    help: "lot status transitions",
    labelNames: ["to"],
    registers,
  });
  const inspections = new Counter({
    name: "esp_fleet_sqal_inspections_total",
    help: "inspection attempts by outcome (done, refused, timeout, station_offline, no_station)",
    labelNames: ["outcome"],
    registers,
  });
  const lots = new Gauge({
    name: "esp_fleet_sqal_lots",
    help: "lots by status",
    labelNames: ["status"],
    registers,
    async collect() {
      try {
        const r = await db.query<{ status: string; n: number }>(
          "SELECT status, count(*)::int AS n FROM sqal_lots GROUP BY status",
        );
        for (const s of LOT_STATUSES) this.set({ status: s }, r.rows.find((x) => x.status === s)?.n ?? 0);
      } catch {
        // the database is unavailable: keep the last values (readiness reports it)
      }
    },
  });
  const confusion = new Counter({
    name: "esp_fleet_sqal_diagnosis_confusion_total",
    help: "fridge readings with simulation ground truth, by true fault and diagnosed state (normal = none)",
    labelNames: ["truth", "diagnosis"],
    registers,
  });
  const diagnosisEvents = new Counter({
    name: "esp_fleet_sqal_diagnosis_events_total",
    help: "fridge diagnosis events by type (raised, changed, cleared) and fault",
    labelNames: ["type", "fault"],
    registers,
  });
  const diagnosisIdentified = new Gauge({
    name: "esp_fleet_sqal_diagnosis_identified_ratio",
    help: "fault episodes identified correctly within 3 readings of onset (ground truth runs)",
    registers,
  });
  const diagnosisFalseAlarms = new Gauge({
    name: "esp_fleet_sqal_diagnosis_false_alarm_ratio",
    help: "normal readings on which a fault was diagnosed (ground truth runs)",
    registers,
  });
  const cpk = new Gauge({
    name: "esp_fleet_sqal_thickness_cpk",
    help: "Cpk of product thickness (LSL 45, USL 55 mm) over the recent samples of a station",
    labelNames: ["station"],
    registers,
  });
  for (const g of GRADES) samples.inc({ grade: g }, 0);
  return {
    samples,
    score,
    rejectRate,
    averageScore,
    defects,
    alerts,
    messages,
    transitions,
    inspections,
    lots,
    confusion,
    diagnosisEvents,
    diagnosisIdentified,
    diagnosisFalseAlarms,
    cpk,
  };
}
export type SqalMetrics = ReturnType<typeof createSqalMetrics>;
