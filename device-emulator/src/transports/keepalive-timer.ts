/**
 * One coarse interval timer for the keep-alive of every MQTT.js client in the process (MQTT.js's
 * `timerVariant` option takes any `{ set, clear }` pair).
 *
 * MQTT.js re-arms a client's keep-alive interval on every PUBACK (`reschedulePings`): with 10,000
 * devices publishing once a second that is 10,000 `clearInterval` + `setInterval` per second, each
 * allocating a Node `Timeout` and re-linking the timer list. Here `set` records a due time in a map and
 * `clear` deletes it; one unref'd 1 s tick fires what is due. Behaviour on the wire is unchanged: a
 * PINGREQ still goes out only after `keepalive` seconds without an acknowledged exchange, give or take
 * the 1 s tick (the broker allows 1.5 × keepalive). Turning `reschedulePings` off instead would send a
 * PINGREQ every keepalive from every busy device.
 */
type Entry = { fn: () => void; every: number; due: number };

const TICK_MS = 1000;
const entries = new Map<number, Entry>();
let nextId = 1;
let ticker: NodeJS.Timeout | undefined;

function tick(): void {
  const now = Date.now();
  for (const e of entries.values()) {
    if (e.due > now) continue;
    e.due += e.every;
    if (e.due <= now) e.due = now + e.every;
    try {
      e.fn();
    } catch {
      // MQTT.js's keep-alive callbacks do not throw; a bug there must not stop the other clients' timers
    }
  }
  if (entries.size === 0 && ticker) {
    clearInterval(ticker);
    ticker = undefined;
  }
}

export const sharedKeepaliveTimer = {
  set(fn: () => void, every: number): number {
    const id = nextId++;
    if (nextId > 0x3fffffff) nextId = 1;
    entries.set(id, { fn, every, due: Date.now() + every });
    if (!ticker) {
      ticker = setInterval(tick, TICK_MS);
      ticker.unref();
    }
    return id;
  },
  clear(id: number): void {
    entries.delete(id);
  },
};
