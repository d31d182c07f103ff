import { FAULT_IDS } from "@esp-fleet/schemas";
import { confusionMarkdown, type DiagnosisReport } from "./score.ts";

/** A human report of a scored diagnosis run (Markdown). */
export function diagnosisMarkdown(r: DiagnosisReport, title: string): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  const lines = [
    `### ${title}`,
    "",
    `- readings: ${r.readings}; fault episodes: ${r.episodes}`,
    `- **fault episodes identified correctly within ${r.withinReadings} readings of onset: ${r.identified} / ${r.episodes} = ${pct(r.identifiedRate)}** (target ≥ 95 %)`,
    `- **false alarms on normal readings: ${r.falseAlarms} / ${r.normalReadings} = ${pct(r.falseAlarmRate)}** (target ≤ 1 %)`,
    `- per-reading accuracy (includes the first, partly drifted reading of each episode): ${pct(r.accuracy)}`,
    "",
    "| fault | episodes | identified ≤ 3 readings |",
    "|---|---:|---:|",
    ...FAULT_IDS.map((f, i) => `| ${i + 1} ${f} | ${r.perFault[f].episodes} | ${r.perFault[f].identified} |`),
    "",
    "Confusion matrix over readings (rows: simulation ground truth `sim.fault`; columns: the diagnosis in",
    "force after that reading; fault numbers as in the domain table):",
    "",
    confusionMarkdown(r),
  ];
  return lines.join("\n");
}
