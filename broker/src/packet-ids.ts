/**
 * Packet identifiers in use (docs/broker.md, "Packet identifiers in use").
 *
 * Aedes 1.2 numbers a connection's QoS 1/2 deliveries from a counter that starts at a random number and
 * wraps at 65,535 (`lib/qos-packet.js`), without looking at the identifiers the session already uses. A
 * persistent session that reconnects still holds its unacknowledged messages under the identifiers they
 * were sent with (the replay sends them again with those, as MQTT 3.1.1 §4.4 asks), so the new
 * connection's live deliveries can take the same identifiers — by chance with a few in flight, almost
 * surely with tens of thousands (ingest acknowledges a batch at a time). MQTT 3.1.1 §2.3.1 forbids that,
 * and the queue shows why: a PUBACK names only an identifier, the session queue removes the oldest
 * message holding it, and that is the *old* message, never acknowledged, which is then not delivered
 * again — a reading lost after its device got its PUBACK. (Found in bench:e2e, reproduced in
 * broker/test/packet-ids.test.ts.)
 *
 * Two parts. The in-memory session queue gives a delivery numbered with an identifier another queued
 * message holds a free one instead (`OutgoingIndex` with `uniqueIds`, in its `outgoingUpdate`, before
 * Aedes writes the packet). And, here, flow control for when (nearly) all are held — for live deliveries
 * and for the replay — no second copy of a message to the connection it was already written to (the
 * replay and a live delivery), and a retained message sent at SUBSCRIBE numbered through the queue too.
 */

import { installDelivery } from "./deliver.ts";
import { Fifo } from "./emitter-queue.ts";
import type { Standing } from "./outgoing-index.ts";

/** What the session queue knows about its packet identifiers, without I/O. */
export interface IdentifiersInUse {
  /** how many distinct identifiers the session's queued messages hold */
  count(clientId: string): number;
  /** call `listener` whenever a PUBACK (or PUBCOMP) removes a message from a session's queue */
  onRelease(listener: (clientId: string) => void): void;
  /** where the message `packet` names stands in the session's queue for a delivery to `connection`
   * (OutgoingIndex.standing) */
  standing(clientId: string, packet: { brokerId?: string; brokerCounter?: number }, connection: object): Standing;
}

type Callback = (err?: Error | null) => void;

interface GatedPacket {
  qos: number;
  retain?: boolean;
  brokerId?: string | null;
  brokerCounter?: number;
}

interface GatedClient {
  id?: string;
  clean: boolean;
  broker: { id: string; persistence: { outgoingEnqueue(sub: { clientId: string }, packet: object): Promise<unknown> } };
  emit(event: "error", err: unknown): boolean;
  conn: { once(event: "close", f: () => void): unknown; destroy(err?: Error): void };
  deliverQoS(packet: GatedPacket, cb: Callback): void;
}

/** Identifiers kept back from live deliveries for replayed messages that had none yet (the replay waits only
 * when all 65,535 are in use, `room`). */
export const IDS_RESERVE = 1024;

export interface IdentifierGateOptions {
  /** called for each delivery put on hold */
  onHold(clientId: string): void;
  /** A session whose held deliveries see no PUBACK free an identifier for this long is disconnected, as
   * Aedes drops a client that does not drain (MQTT_DRAIN_TIMEOUT_MS): its queue keeps everything, and
   * the next connection's replay sends it. */
  holdTimeoutMs: number;
  /** called when a session is disconnected for that */
  onTimeout(clientId: string): void;
}

/**
 * Flow control for a session whose unacknowledged messages hold (nearly) every packet identifier: with
 * 65,535 − IDS_RESERVE held, its next QoS 1/2 deliveries wait — in order, each keeping its routing slot —
 * until a PUBACK frees identifiers (`onRelease`), instead of taking identifiers in use. If the connection
 * closes meanwhile, the waiting deliveries give their slots back unwritten: their messages are in the
 * session's queue, and the next connection's replay sends them. If no PUBACK frees one within
 * `holdTimeoutMs`, the connection is closed (and so the same).
 *
 * And for every persistent-session delivery, in the turn it is numbered and written (deliver.ts, `skip`):
 * not written when its message was already written to this connection (from the replayed queue) or is no
 * longer in the session's queue (`standing`). Decided any earlier — when Aedes is handed the delivery, a
 * turn before it numbers it — the replay could write the message in between (a second copy under a second
 * identifier, the first then free for another message while its PUBACK is on the way), or the PUBACK for
 * the replayed copy remove it (Aedes then closes the connection: "no such packet").
 *
 * Install per client in `preConnect`, instead of `installPromptDelivery` (`prompt` does the same here),
 * before anything else that wraps `deliverQoS`.
 */
export function createIdentifierGate(inUse: IdentifiersInUse, opts: IdentifierGateOptions) {
  const limit = 65535 - IDS_RESERVE;
  const flushers = new Map<string, () => void>();
  const rooms = new WeakMap<object, () => Promise<Error | undefined> | undefined>();
  inUse.onRelease((clientId) => flushers.get(clientId)?.());
  return {
    /** The delivery functions (with the skip) and the hold; false, leaving the client alone, when it does
     * not have Aedes 1.2's delivery functions. */
    install(client: object, delivery: { prompt?: boolean } = {}): boolean {
      const c = client as GatedClient;
      const skip = (packet: { brokerId?: string; brokerCounter?: number }) =>
        c.id !== undefined && inUse.standing(c.id, packet, c) !== "queued";
      if (!installDelivery(c, { prompt: delivery.prompt === true, skip, retainedQueued: true })) return false;
      this.hold(c);
      // A retained message sent at SUBSCRIBE (Aedes marks it with a null broker id, so that it is not taken
      // for a duplicate) is queued for a persistent session first, as a routed message is at its publish:
      // numbered through the queue, its identifier is one no queued message holds (Aedes's counter alone
      // can give it one, and its PUBACK would then remove that message), and unacknowledged it is sent
      // again at the session's return (MQTT 3.1.1 §4.4). Outside the hold, so that a retained delivery on
      // hold when the connection closes is in the queue for the next one, as a routed one is. (Its numbering
      // through the queue is `retainedQueued` above.)
      const deliver = c.deliverQoS;
      c.deliverQoS = function queueRetained(packet, cb) {
        if (packet.qos === 0 || c.clean || packet.brokerId !== null || c.id === undefined) return deliver.call(c, packet, cb);
        packet.brokerId = c.broker.id;
        c.broker.persistence.outgoingEnqueue({ clientId: c.id }, packet).then(
          () => deliver.call(c, packet, cb),
          (err: unknown) => {
            c.emit("error", err);
            cb();
          },
        );
      };
      return true;
    },
    /** The hold alone, around the client's `deliverQoS` as it is. */
    hold(client: object): void {
      const c = client as GatedClient;
      const deliver = c.deliverQoS;
      // deliveries on hold, oldest first; made at the first hold (most sessions never have one). A ring,
      // not an array: up to `concurrency` entries taken from the front (emitter-queue.ts)
      let waiting: Fifo<[packet: GatedPacket, cb: Callback]> | undefined;
      // the replay's waits for an identifier (`room`)
      const replayWaits: ((err: Error | undefined) => void)[] = [];
      let gone = false;
      let flushing = false;
      let timer: NodeJS.Timeout | undefined;
      // Deliveries passed on and not called back yet. Aedes numbers a delivery a turn after it is handed
      // it, and a router with many slots hands over thousands in one turn: counted only once numbered,
      // they would all pass a gate that is one identifier short of its limit.
      let pending = 0;
      const inUseNow = () => (c.id === undefined ? 0 : inUse.count(c.id) + pending);
      const passOn = (packet: GatedPacket, cb: Callback) => {
        pending++;
        deliver.call(c, packet, () => {
          pending--;
          cb();
          if (waiting?.length || replayWaits.length) flush();
        });
      };
      const flush = (): void => {
        if (flushing) return;
        flushing = true;
        try {
          const before = (waiting?.length ?? 0) + replayWaits.length;
          // the replay first: it uses the reserve above the live limit, and its messages are older
          while (replayWaits.length > 0 && (gone || inUseNow() < 65535)) {
            replayWaits.shift()!(gone ? new Error("connection closed") : undefined);
          }
          while (waiting && waiting.length > 0 && (gone || inUseNow() < limit)) {
            const [packet, cb] = waiting.shift()!;
            // gone: its slot back, unwritten (and one written meanwhile from the replayed queue, or
            // acknowledged, is skipped by the delivery)
            if (gone) cb();
            else passOn(packet, cb);
          }
          const after = (waiting?.length ?? 0) + replayWaits.length;
          if (after === 0) {
            clearTimeout(timer);
            timer = undefined;
            if (c.id !== undefined && flushers.get(c.id) === flush) flushers.delete(c.id);
          } else if (after < before) timer?.refresh();
        } finally {
          flushing = false;
        }
      };
      const startWaiting = () => {
        if (timer) return;
        flushers.set(c.id as string, flush);
        timer = setTimeout(() => {
          opts.onTimeout(c.id as string);
          c.conn.destroy(new Error("packet identifiers not released"));
        }, opts.holdTimeoutMs);
        timer.unref();
      };
      c.conn.once("close", () => {
        gone = true;
        setImmediate(flush);
      });
      c.deliverQoS = function gatedDeliverQoS(packet, cb) {
        if (packet.qos === 0 || c.clean) return deliver.call(c, packet, cb);
        if (gone) return deliver.call(c, packet, cb);
        if (!waiting?.length && inUseNow() < limit) return passOn(packet, cb);
        waiting ??= new Fifo();
        startWaiting();
        waiting.push([packet, cb]);
        opts.onHold(c.id as string);
      };
      rooms.set(c, () => {
        if (gone || inUseNow() < 65535) return undefined;
        startWaiting();
        return new Promise((resolve) => replayWaits.push(resolve));
      });
    },
    /**
     * For the replay (replay.ts), before it gives a queued message that has none an identifier:
     * `undefined` when one is free now; otherwise a promise that resolves when a PUBACK frees one (with an
     * error if the connection closes first — after `holdTimeoutMs` without one the gate closes it). The
     * replay uses the last IDS_RESERVE identifiers, which live deliveries leave.
     */
    room(client: object): Promise<Error | undefined> | undefined {
      return rooms.get(client)?.();
    },
  };
}
