/**
 * GC pauses on this process's main thread, for the benchmarks: time by kind and the worst single pause
 * since the last `take()`. V8's concurrent marking on its helper threads is not a pause and is not counted
 * here (it shows in the process's CPU time).
 */
import { constants, PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";

export interface GcPauses {
  /** Milliseconds paused, by kind. */
  minor: number;
  major: number;
  incremental: number;
  other: number;
  majorCount: number;
  /** The longest single pause, in milliseconds. */
  worst: number;
  /** Kind of the longest pause. */
  worstKind: "minor" | "major" | "incremental" | "other" | "";
}

const zero = (): GcPauses => ({ minor: 0, major: 0, incremental: 0, other: 0, majorCount: 0, worst: 0, worstKind: "" });

const KINDS = new Map<number | undefined, "minor" | "major" | "incremental">([
  [constants.NODE_PERFORMANCE_GC_MINOR, "minor"],
  [constants.NODE_PERFORMANCE_GC_MAJOR, "major"],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, "incremental"],
]);

/** Starts watching; `take()` returns the pauses since the last take (or the start) and begins anew. */
export function watchGc(): { take(): GcPauses; stop(): void } {
  let acc = zero();
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = KINDS.get((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind) ?? "other";
      acc[kind] += e.duration;
      if (kind === "major") acc.majorCount++;
      if (e.duration > acc.worst) {
        acc.worst = e.duration;
        acc.worstKind = kind;
      }
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  return {
    take() {
      const out = acc;
      acc = zero();
      return out;
    },
    stop: () => observer.disconnect(),
  };
}
