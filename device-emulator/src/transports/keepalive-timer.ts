/**
 * One coarse interval timer for the keep-alive of every MQTT.js client in the process (MQTT.js's
 * `timerVariant` option takes any `{ set, clear }` pair).
 *
 * MQTT.js's keep-alive manager fires every keepalive/2 and sends a PINGREQ on its second tick. Here `set`
 * appends a small record to an array (due time from a clock refreshed by the tick, no `Date.now()`) and
 * `clear` voids it; one unref'd 1 s tick fires what is due and compacts the array — no Node `Timeout` per
 * client. The device transport runs with `reschedulePings: false` (transports/mqtt.ts): the timer is
 * re-armed at each CONNACK and PINGRESP, not on every PUBACK (10,000 re-arms a second for a 10k fleet,
 * each a closure and a record that lived a second and were promoted by the GC), so a busy device on MQTT.js
 * sends a PINGREQ every keep-alive period, like an idle one — allowed at any time by MQTT 3.1.1 §3.1.2.10.
 * (The session transport, the default, checks every half period and pings only when nothing was
 * acknowledged since the last check: session.ts, `#keepaliveCheck`.)
 * Timing is up to 1 s early or late; the broker allows 1.5 × keepalive.
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
