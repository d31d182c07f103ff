import fc from "fast-check";
import type { Packet } from "mqtt";
import { describe, expect, it } from "vitest";
import { InflightWindow } from "../src/transports/inflight.ts";

const pub = (messageId: number, n: number): Packet => ({
  cmd: "publish",
  topic: "t",
  payload: Buffer.from([n]),
  qos: 1,
  retain: false,
  dup: false,
  messageId,
});

async function drain(w: InflightWindow): Promise<Packet[]> {
  const out: Packet[] = [];
  for await (const p of w.createStream()) out.push(p as Packet);
  return out;
}

describe("InflightWindow (MQTT.js outgoing store + message id provider)", () => {
  it("hands out the lowest free identifier and takes it back on deallocate", () => {
    const w = new InflightWindow();
    expect([w.allocate(), w.allocate(), w.allocate()]).toEqual([1, 2, 3]);
    w.deallocate(2);
    expect(w.allocate()).toBe(2);
    expect(w.allocate()).toBe(4);
    expect(w.getLastAllocated()).toBe(4);
    expect(w.register(4)).toBe(false); // in use
    w.deallocate(4);
    expect(w.register(4)).toBe(true);
  });

  it("never hands out the identifier of a stored packet, even after the CONNACK's clear()", async () => {
    const w = new InflightWindow();
    for (let i = 0; i < 3; i++) w.put(pub(w.allocate() as number, i));
    w.clear(); // MQTT.js, at the CONNACK: the provider forgets, the stored packets are still unacknowledged
    expect(w.allocate()).toBe(4);
    // the resend registers them again, in the order they were sent
    const resend = await drain(w);
    expect(resend.map((p) => p.messageId)).toEqual([1, 2, 3]);
    for (const p of resend) expect(w.register(p.messageId as number)).toBe(true);
  });

  it("stores, finds and deletes by identifier; a missing one is an error, as in MQTT.js's store", () => {
    const w = new InflightWindow();
    w.put(pub(7, 1));
    let got: Packet | undefined;
    w.get({ messageId: 7 }, (_e, p) => (got = p));
    expect(got?.messageId).toBe(7);
    let err: Error | undefined;
    w.del({ messageId: 7 }, () => undefined);
    w.del({ messageId: 7 }, (e) => (err = e));
    expect(err?.message).toBe("missing packet");
    expect(w.size).toBe(0);
  });

  it("property: identifiers of the packets in flight are unique, and the resend order is the send order", async () => {
    // ops: send (allocate + put), ack the k-th oldest in flight (del + deallocate), reconnect (clear + resend)
    const op = fc.oneof(
      fc.constant({ t: "send" as const }),
      fc.record({ t: fc.constant("ack" as const), k: fc.nat(20) }),
      fc.constant({ t: "reconnect" as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 200, size: "max" }), async (ops) => {
        const w = new InflightWindow();
        const inflight: { id: number; n: number }[] = [];
        let n = 0;
        for (const o of ops) {
          if (o.t === "send") {
            const id = w.allocate() as number;
            expect(inflight.some((p) => p.id === id)).toBe(false);
            w.put(pub(id, n & 0xff));
            inflight.push({ id, n: n++ & 0xff });
          } else if (o.t === "ack" && inflight.length > 0) {
            const [p] = inflight.splice(o.k % inflight.length, 1);
            w.del({ messageId: p!.id }, () => undefined);
            w.deallocate(p!.id);
          } else if (o.t === "reconnect") {
            w.clear();
            const resent = await drain(w);
            expect(resent.map((p) => [p.messageId, (p as { payload: Buffer }).payload[0]])).toEqual(
              inflight.map((p) => [p.id, p.n]),
            );
            for (const p of resent) expect(w.register(p.messageId as number)).toBe(true);
          }
        }
        expect(w.size).toBe(inflight.length);
      }),
      { numRuns: 200 },
    );
  });
});
