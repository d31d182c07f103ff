import { setFlagsFromString } from "node:v8";

/**
 * How far V8 lets the old generation grow past the live heap before the next full GC, in percent:
 * 100 ⇒ ×2 (the default, EMULATOR_HEAP_GROWTH_PERCENT). 0 leaves V8's own choice, which on a machine
 * with gigabytes of RAM is up to ×4.
 *
 * A fleet process holds a large, stable live heap (~19 KB per online device: its MQTT session, socket
 * and models) and makes short-lived garbage at a steady rate. With V8's default factor the committed heap
 * swings between 1× and 4× of what is live, so the process's memory is mostly garbage waiting for the next
 * mark-compact (docs/benchmarks.md, "RSS at the end of the window"). ×2 keeps the garbage at most as
 * large as the live heap, for more frequent (incremental, mostly concurrent) major GCs: 10,000 fridges
 * 38-47 KB per device instead of 51-82. (×1.5 saved a few KB more but, in runs where PUBACKs came back
 * slower and more was promoted, ran up to 10 major GCs a minute and 98 % of a core.) Unlike a heap ceiling
 * (`--max-old-space-size`) it cannot run out of memory when a broker outage fills every offline FIFO.
 *
 * `--heap-growing-percent` is a documented V8 flag, read at every heap-limit recomputation, so setting it
 * at run time (before the fleet starts) behaves as it does on the command line; a `--heap-growing-percent`
 * given to node explicitly wins (nothing is changed then).
 */
export function tuneHeapGrowth(percent: number): boolean {
  if (percent <= 0) return false;
  if (process.execArgv.some((a) => a.startsWith("--heap-growing-percent") || a.startsWith("--heap_growing_percent")))
    return false;
  setFlagsFromString(`--heap-growing-percent=${Math.round(percent)}`);
  return true;
}
