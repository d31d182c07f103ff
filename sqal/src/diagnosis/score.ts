import { FAULT_IDS, type FaultId } from "@esp-fleet/schemas";
import type { DiagnosisLabel } from "./classify.ts";

export const DIAGNOSIS_LABELS: readonly DiagnosisLabel[] = ["normal", ...FAULT_IDS];

export interface DiagnosisReport {
  readings: number;
  /** rows = truth, columns = diagnosis, in DIAGNOSIS_LABELS order */
  matrix: number[][];
  episodes: number;
  /** episodes whose fault was the diagnosis at one of its first `withinReadings` readings */
  identified: number;
  identifiedRate: number;
  /** per fault: episodes / identified */
  perFault: Record<FaultId, { episodes: number; identified: number }>;
  normalReadings: number;
  falseAlarms: number;
  falseAlarmRate: number;
  /** readings-weighted accuracy over every reading */
  accuracy: number;
  withinReadings: number;
}

interface Track {
  truth: DiagnosisLabel;
  age: number;
  hit: boolean;
}

/**
 * Scores a diagnosis against simulation ground truth (`sim.fault`): a confusion matrix over readings,
 * fault episodes (a run of readings with the same true fault on one fridge) identified within the
 * first N readings, and false alarms (a fault diagnosed on a reading whose truth is normal).
 */
export class DiagnosisScorer {
  readonly withinReadings: number;
  readonly #index = new Map<DiagnosisLabel, number>(DIAGNOSIS_LABELS.map((l, i) => [l, i]));
  readonly matrix: number[][] = DIAGNOSIS_LABELS.map(() => DIAGNOSIS_LABELS.map(() => 0));
  readonly #tracks = new Map<string, Track>();
  readonly #perFault = Object.fromEntries(FAULT_IDS.map((f) => [f, { episodes: 0, identified: 0 }])) as Record<
    FaultId,
    { episodes: number; identified: number }
  >;
  #readings = 0;

  constructor(withinReadings = 3) {
    this.withinReadings = withinReadings;
  }

  record(dev: string, truth: FaultId | null, diagnosed: DiagnosisLabel): void {
    const t: DiagnosisLabel = truth ?? "normal";
    this.#readings++;
    this.matrix[this.#index.get(t)!]![this.#index.get(diagnosed)!]!++;
    let track = this.#tracks.get(dev);
    if (!track || track.truth !== t) {
      track = { truth: t, age: 0, hit: false };
      this.#tracks.set(dev, track);
      if (t !== "normal") this.#perFault[t].episodes++;
    }
    track.age++;
    if (t !== "normal" && !track.hit && track.age <= this.withinReadings && diagnosed === t) {
      track.hit = true;
      this.#perFault[t].identified++;
    }
  }

  report(): DiagnosisReport {
    const n = DIAGNOSIS_LABELS.length;
    let correct = 0;
    for (let i = 0; i < n; i++) correct += this.matrix[i]![i]!;
    const normalRow = this.matrix[0]!;
    const normalReadings = normalRow.reduce((a, b) => a + b, 0);
    const falseAlarms = normalReadings - normalRow[0]!;
    let episodes = 0;
    let identified = 0;
    for (const f of FAULT_IDS) {
      episodes += this.#perFault[f].episodes;
      identified += this.#perFault[f].identified;
    }
    return {
      readings: this.#readings,
      matrix: this.matrix.map((r) => [...r]),
      episodes,
      identified,
      identifiedRate: episodes > 0 ? identified / episodes : 1,
      perFault: structuredClone(this.#perFault),
      normalReadings,
      falseAlarms,
      falseAlarmRate: normalReadings > 0 ? falseAlarms / normalReadings : 0,
      accuracy: this.#readings > 0 ? correct / this.#readings : 1,
      withinReadings: this.withinReadings,
    };
  }
}

/** The confusion matrix as a Markdown table (truth in rows). */
export function confusionMarkdown(report: DiagnosisReport): string {
  const short = (l: DiagnosisLabel) => (l === "normal" ? "normal" : String(FAULT_IDS.indexOf(l) + 1));
  const head = `| truth \\ diagnosis | ${DIAGNOSIS_LABELS.map(short).join(" | ")} |`;
  const sep = `|---|${DIAGNOSIS_LABELS.map(() => "---:").join("|")}|`;
  const rows = DIAGNOSIS_LABELS.map(
    (l, i) => `| ${l === "normal" ? "normal" : `${short(l)} ${l}`} | ${report.matrix[i]!.join(" | ")} |`,
  );
  return [head, sep, ...rows].join("\n");
}
