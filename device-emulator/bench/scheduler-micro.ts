/**
 * Scheduler micro-measurement: the previous binary-heap scheduler (test/reference-heap-scheduler.ts,
 * one entry object per firing) against the bucket queue (one reusable handle per timer), both driven
 * by a ManualClock in this process — 10,000 targets on a 1 s period, 10 ms quantum, 20 simulated
 * seconds per round, rounds interleaved so machine load hits both alike. Prints ns per firing.
 * Usage: flock /tmp/bench.lock node --import tsx device-emulator/bench/scheduler-micro.ts
 */
import { ManualClock } from "@esp-fleet/common/clock";
import { Scheduler, type TimerHandle } from "../src/scheduler.ts";
import { Scheduler as HeapScheduler, type ScheduledEntry } from "../test/reference-heap-scheduler.ts";

const TARGETS = 10_000;
const SECONDS = 20;

function bucket(): number {
  const clock = new ManualClock(0);
  const s = new Scheduler(clock, { quantum: 10 });
  let fired = 0;
  for (let i = 0; i < TARGETS; i++) {
    const t = {
      h: undefined as TimerHandle | undefined,
      onTimer(_slot: number, at: number) {
        fired++;
        s.set(t.h as TimerHandle, at + 1000);
      },
    };
    t.h = s.timer(t, 1);
    s.set(t.h, (i * 1000) / TARGETS);
  }
  const t0 = performance.now();
  for (let k = 0; k < SECONDS * 100; k++) clock.advance(10);
  return ((performance.now() - t0) * 1e6) / fired;
}

function heap(): number {
  const clock = new ManualClock(0);
  const s = new HeapScheduler(clock, { quantum: 10 });
  let fired = 0;
  for (let i = 0; i < TARGETS; i++) {
    const t = {
      e: undefined as ScheduledEntry | undefined,
      onTimer(_slot: number, at: number) {
        fired++;
        s.cancel(t.e);
        t.e = s.schedule(t, 1, at + 1000);
      },
    };
    t.e = s.schedule(t, 1, (i * 1000) / TARGETS);
  }
  const t0 = performance.now();
  for (let k = 0; k < SECONDS * 100; k++) clock.advance(10);
  return ((performance.now() - t0) * 1e6) / fired;
}

const runs = { heap: [] as number[], bucket: [] as number[] };
for (let round = 0; round < 5; round++) {
  runs.heap.push(heap());
  runs.bucket.push(bucket());
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
process.stdout.write(
  `${JSON.stringify({ ns_per_firing_median: { heap: Math.round(median(runs.heap)), bucket: Math.round(median(runs.bucket)) }, runs })}\n`,
);
