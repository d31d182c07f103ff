/**
 * One coarse interval timer for the keep-alive of every MQTT.js client in the process (MQTT.js's
 * `timerVariant` option takes any `{ set, clear }` pair).
 *
 * MQTT.js re-arms a client's keep-alive interval on every PUBACK (`reschedulePings`): with 10,000
 * devices publishing once a second that is 10,000 `clearInterval` + `setInterval` per second, each
 * allocating a Node `Timeout` and re-linking the timer list. Here `set` appends a small record to an
 * array (due time from a clock refreshed by the tick, no `Date.now()`) and `clear` voids it; one unref'd
 * 1 s tick fires what is due and compacts the array. Behaviour on the wire is unchanged: a PINGREQ still
 * goes out only after about `keepalive` seconds without an acknowledged exchange (up to 1 s early or
 * late; the broker allows 1.5 × keepalive). Turning `reschedulePings` off instead would send a PINGREQ
 * every keepalive from every busy device.
 */
interface Entry {
  fn: (() => void) | null;
  every: number;
  due: number;
}

const TICK_MS = 1000;
let entries: Entry[] = [];
let coarseNow = 0;
let ticker: NodeJS.Timeout | undefined;

function tick(): void {
  coarseNow = Date.now();
  const current = entries;
  entries = [];
  for (let i = 0; i < current.length; i++) {
    const e = current[i] as Entry;
    const fn = e.fn;
    if (!fn) continue;
    if (e.due <= coarseNow) {
      e.due = coarseNow + e.every;
      try {
        fn();
      } catch {
        // MQTT.js's keep-alive callbacks do not throw; a bug there must not stop the other clients' timers
      }
    }
    if (e.fn) entries.push(e);
  }
  if (entries.length === 0 && ticker) {
    clearInterval(ticker);
    ticker = undefined;
  }
}

export const sharedKeepaliveTimer = {
  /** Returns an opaque handle (MQTT.js only passes it back to `clear` and tests it for truthiness). */
  set(fn: () => void, every: number): number {
    if (!ticker) {
      coarseNow = Date.now();
      ticker = setInterval(tick, TICK_MS);
      ticker.unref();
    }
    const e: Entry = { fn, every, due: coarseNow + every };
    entries.push(e);
    return e as unknown as number;
  },
  clear(handle: number): void {
    const e = handle as unknown as Entry | undefined;
    if (e && typeof e === "object") e.fn = null;
  },
};
