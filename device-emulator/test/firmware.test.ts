import { describe, expect, it } from "vitest";
import { encodeCbor, type DeviceKind } from "@esp-fleet/schemas";
import type { FirmwareOptions } from "../src/firmware.ts";
import { deviceRig, wire } from "./helpers.ts";

const BASE: Partial<FirmwareOptions> = {
  intervalMs: 1000,
  heartbeatMs: 30_000,
  faultProb: 0,
  wifiJoinMs: [100, 100],
  backoffMinMs: 1000,
  backoffMaxMs: 8000,
  jitter: 0,
  i2cErrorProb: 0,
  watchdogMs: 0,
};

function rig(
  kind: DeviceKind = "fridge",
  options: Partial<FirmwareOptions> = {},
  mode: "accept" | "manual" | "refuse" = "manual",
) {
  return deviceRig(kind, { options: { ...BASE, ...options }, mode });
}

describe("firmware life cycle (manual clock, memory transport)", () => {
  it("boot → online → link loss → offline buffering → reconnect → ordered flush, exact messages", () => {
    const { clock, transport, device, take } = rig("fridge");
    device.start();
    expect(device.boot).toBe(1);
    expect(device.state).toBe("booting");
    clock.advance(99);
    expect(transport.connects).toHaveLength(0);
    clock.advance(1); // Wi-Fi joined after 100 ms → connect
    expect(transport.connects).toHaveLength(1);
    const will = wire(
      { site: "LL", kind: "fridge", dev: "FRIDGE_LL_01" },
      {
        channel: "status",
        payload: transport.connects[0]!.will.payload,
        qos: 1,
        retain: true,
      },
    );
    expect(will.msg).toMatchObject({ state: "offline", reason: "link lost", dev: "FRIDGE_LL_01", boot: 1, seq: 0 });
    expect(transport.connects[0]!.will).toMatchObject({ channel: "status", qos: 1, retain: true });

    transport.accept();
    expect(device.state).toBe("online");
    const birth = take();
    expect(birth.map((w) => [w.topic, w.qos, w.retain, w.schema])).toEqual([
      ["LL/fridge/FRIDGE_LL_01/status", 1, true, "status"],
      ["LL/fridge/FRIDGE_LL_01/meta", 1, true, "meta"],
      ["LL/fridge/FRIDGE_LL_01/log", 0, false, "log"],
      ["LL/fridge/FRIDGE_LL_01/event", 1, false, "event"],
    ]);
    expect(birth[0]!.msg).toMatchObject({ v: 1, state: "online", reason: "boot: power_on", seq: 1, boot: 1, ts: clock.now() });
    expect(birth[1]!.msg).toMatchObject({ kind: "fridge", site: "LL", emulated: true, cfg: { interval_ms: 1000 } });
    expect(birth[1]!.msg.mac).toMatch(/^24:0A:C4:/);
    expect(birth[3]!.msg).toMatchObject({ type: "boot", sev: "info", data: { reason: "power_on", boot: 1 } });

    // Readings once per second, seq 0, 1, 2 …
    clock.advance(3000);
    const t1 = take();
    expect(t1.every((w) => w.topic === "LL/fridge/FRIDGE_LL_01/telemetry" && w.qos === 1 && !w.retain)).toBe(true);
    expect(t1.map((w) => w.msg.seq)).toEqual([0, 1, 2]);
    expect(t1[0]!.msg).toMatchObject({ sim: { fault: null } });

    // Link lost: nothing is published (MemoryTransport throws if it were), readings go to the FIFO.
    transport.drop();
    expect(device.state).toBe("backoff");
    clock.advance(999);
    expect(transport.connects).toHaveLength(1);
    clock.advance(1); // first retry after 1000 ms
    expect(transport.connects).toHaveLength(2);
    transport.refuse("connection refused: server unavailable");
    clock.advance(1999);
    expect(transport.connects).toHaveLength(2);
    clock.advance(1); // second retry after 2000 ms more (exponential)
    expect(transport.connects).toHaveLength(3);
    transport.refuse();
    clock.advance(4000); // third retry after 4000 ms more
    expect(transport.connects).toHaveLength(4);
    expect(take()).toEqual([]);
    const buffered = device.counters.buffered;
    expect(buffered).toBe(7);
    transport.accept(true);
    const flush = take();
    expect(flush[0]).toMatchObject({
      topic: "LL/fridge/FRIDGE_LL_01/status",
      retain: true,
      msg: { state: "online", reason: "reconnect" },
    });
    expect(flush[1]).toMatchObject({ topic: "LL/fridge/FRIDGE_LL_01/meta", retain: true });
    const telemetry = flush.slice(2);
    expect(telemetry.map((w) => w.msg.seq)).toEqual(Array.from({ length: buffered }, (_, i) => 3 + i));
    expect(telemetry.every((w) => w.schema === "telemetry/fridge")).toBe(true);
    // Timestamps are the reading times, not the flush time.
    const ts = telemetry.map((w) => w.msg.ts as number);
    expect(ts).toEqual([...ts].sort((a, b) => a - b));
    expect(ts[0]!).toBeLessThan(clock.now() - 3000);
    expect(device.counters).toMatchObject({ buffered: 0, dropped: 0, reconnects: 1 });
    clock.advance(1000);
    expect(take().map((w) => w.msg.seq)).toEqual([3 + buffered]);
  });

  it("a full FIFO drops the oldest, counts it, and says so after the reconnect", () => {
    const { clock, transport, device, take } = rig("fridge", { fifoSize: 3, backoffMinMs: 10_000, backoffMaxMs: 10_000 });
    device.start();
    clock.advance(100);
    transport.accept();
    clock.advance(1000);
    take();
    transport.drop();
    clock.advance(9_999); // readings 1..10 go to a 3-slot FIFO
    expect(device.counters.buffered).toBe(3);
    expect(device.counters.dropped).toBeGreaterThan(0);
    clock.advance(1);
    transport.accept();
    const out = take();
    const seqs = out.filter((w) => w.schema === "telemetry/fridge").map((w) => w.msg.seq as number);
    expect(seqs).toHaveLength(3);
    expect(seqs[1]! - seqs[0]!).toBe(1);
    const overflow = out.find((w) => w.msg.type === "buffer_overflow");
    expect(overflow?.msg).toMatchObject({ sev: "warning", data: { dropped: device.counters.dropped } });
  });

  it("the FIFO grows from a small ring to fifoSize keeping order, then drops the oldest", () => {
    const { clock, transport, device, take } = rig("fridge", { fifoSize: 20, backoffMinMs: 60_000, backoffMaxMs: 60_000 });
    device.start();
    clock.advance(100);
    transport.accept();
    clock.advance(1000);
    take();
    transport.drop();
    clock.advance(15_000); // 15 readings: the ring grows 8 → 16 with everything in order
    expect(device.counters).toMatchObject({ buffered: 15, dropped: 0 });
    clock.advance(10_000); // 25 readings into 20 slots: the 5 oldest are dropped
    expect(device.counters).toMatchObject({ buffered: 20, dropped: 5 });
    clock.advance(35_000);
    transport.accept();
    const seqs = take()
      .filter((w) => w.schema === "telemetry/fridge")
      .map((w) => w.msg.seq as number);
    expect(seqs).toHaveLength(20);
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => seqs[0]! + i));
    expect(device.counters.buffered).toBe(0);
  });

  it("heartbeat status carries uptime, heap, RSSI and counters, one per period", () => {
    const { clock, transport, device, take } = rig("sqal", { heartbeatMs: 5000, intervalMs: 60_000 });
    device.start();
    clock.advance(100);
    transport.accept();
    take();
    const heartbeats = () => take().filter((w) => w.topic.endsWith("/status"));
    clock.advance(5000); // the first comes at a random point of the first period (after the Wi-Fi join here)
    const [hb, more] = heartbeats();
    expect(more).toBeUndefined();
    expect(hb?.retain).toBe(true);
    expect(hb?.msg).toMatchObject({
      state: "online",
      reason: "heartbeat",
      cnt: { buffered: 0, dropped: 0, reconnects: 0, i2c_err: 0 },
    });
    expect(hb?.msg.uptime).toBeLessThanOrEqual(5);
    expect(hb?.msg.heap).toBeGreaterThan(100_000);
    expect(hb?.msg.rssi).toBeLessThan(0);
    clock.advance(15_000);
    const next = heartbeats();
    expect(next.map((w) => (w.msg.ts as number) - (hb!.msg.ts as number))).toEqual([5000, 10_000, 15_000]);
  });

  it("a fleet booted at once spreads its heartbeats over the period instead of sending them in one wave", () => {
    const period = 30_000;
    const firstAt = Array.from({ length: 40 }, (_, i) => {
      const { clock, device, take } = deviceRig("fridge", {
        options: { ...BASE, heartbeatMs: period, intervalMs: 3_600_000 },
        mode: "accept",
        dev: `FRIDGE_LL_${String(i).padStart(2, "0")}`,
        seed: i,
      });
      const t0 = clock.now();
      device.start();
      clock.advance(period);
      const hb = take().find((w) => w.topic.endsWith("/status") && w.msg.reason === "heartbeat");
      return (hb!.msg.ts as number) - t0;
    });
    // Ten 3-second slots of the period: a wave would fill one or two; spread, most hold some.
    const slots = new Set(firstAt.map((t) => Math.floor(t / 3000)));
    expect(slots.size).toBeGreaterThanOrEqual(7);
    expect(Math.min(...firstAt)).toBeGreaterThanOrEqual(0.05 * period);
    expect(Math.max(...firstAt)).toBeLessThanOrEqual(period);
  });

  it("same seed ⇒ the same readings, byte for byte", () => {
    const run = (kind: DeviceKind) => {
      const r = rig(kind, { faultProb: 0.3 }, "accept");
      r.device.start();
      r.clock.advance(20_000);
      return r.transport.published
        .filter((p) => p.channel === "telemetry")
        .map((p) => Buffer.from(p.payload as Uint8Array).toString("hex"));
    };
    for (const kind of ["fridge", "sqal"] as const) {
      const a = run(kind);
      expect(a.length).toBeGreaterThan(15);
      expect(run(kind)).toEqual(a);
    }
  });

  it("clean stop publishes status offline and disconnects cleanly; the boot counter persists", async () => {
    const { clock, transport, device, take, store } = rig("fridge", {}, "accept");
    device.start();
    clock.advance(1500);
    take();
    transport.unackedAtClose = 2; // what the session still held unacknowledged is counted, not delivered
    await device.stop();
    expect(device.counters.unacked).toBe(2);
    const out = take();
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({
      topic: "LL/fridge/FRIDGE_LL_01/status",
      retain: true,
      qos: 1,
      msg: { state: "offline", reason: "shutdown" },
    });
    expect(transport.closes).toEqual([true]);
    expect(store.load("FRIDGE_LL_01").boot).toBe(1);
  });

  it("the watchdog reboots a device that stays offline; boot counter and seq follow", () => {
    const { clock, transport, device, take } = rig("fridge", { watchdogMs: 10_000 }, "accept");
    device.start();
    clock.advance(2000);
    take();
    transport.mode = "refuse";
    transport.drop();
    clock.advance(20_000);
    expect(transport.closes).toContain(false); // abrupt: the broker publishes the will
    transport.mode = "accept";
    clock.advance(20_000);
    expect(device.boot).toBeGreaterThanOrEqual(2);
    const out = take();
    const boot = out.find((w) => w.msg.type === "boot");
    expect(boot?.msg).toMatchObject({ data: { reason: "watchdog" } });
    expect(out.find((w) => w.schema === "telemetry/fridge")?.msg).toMatchObject({ boot: device.boot, seq: 0 });
  });
});

describe("commands", () => {
  const cmd = (o: Record<string, unknown>) => encodeCbor(o);

  it("unknown, malformed and invalid commands get error replies, never a crash", () => {
    const { clock, transport, device, take } = rig("fridge", {}, "accept");
    device.start();
    clock.advance(150);
    take();
    transport.command("selfdestruct", cmd({ id: "c1" }));
    transport.command("status", new Uint8Array([0xff, 0x00, 0x13]));
    transport.command("fault", cmd({ id: "c3", action: "inject" })); // fault missing
    transport.command("config", cmd({ id: "c4", interval_ms: 5 })); // below minimum
    transport.command("inspect", cmd({ id: "c5", lot: "LL2601001", n: 2 })); // fridge cannot inspect
    const out = take();
    expect(out.map((w) => [w.topic, w.msg.id, w.msg.ok])).toEqual([
      ["LL/fridge/FRIDGE_LL_01/cmd/selfdestruct/res", "c1", false],
      ["LL/fridge/FRIDGE_LL_01/cmd/status/res", "unknown", false],
      ["LL/fridge/FRIDGE_LL_01/cmd/fault/res", "c3", false],
      ["LL/fridge/FRIDGE_LL_01/cmd/config/res", "c4", false],
      ["LL/fridge/FRIDGE_LL_01/cmd/inspect/res", "c5", false],
    ]);
    for (const w of out) expect(typeof w.msg.err).toBe("string");
    expect(out[0]!.msg.err).toMatch(/unknown command/);
    expect(out[2]!.msg.err).toMatch(/fault/);
    expect(device.counters.badCommands).toBe(5);
    expect(device.state).toBe("online");
  });

  it("status and config", () => {
    const { clock, transport, device, take } = rig("fridge", {}, "accept");
    device.start();
    clock.advance(150);
    take();
    transport.command("status", cmd({ id: "s1" }));
    transport.command("config", cmd({ id: "k1", interval_ms: 250, fault_prob: 0 }));
    const out = take();
    expect(out[0]!.msg).toMatchObject({ id: "s1", ok: true, data: { state: "online", boot: 1, fault: null } });
    expect(out[1]!.msg).toMatchObject({ id: "k1", ok: true, data: { interval_ms: 250, fault_prob: 0 } });
    expect(out[2]).toMatchObject({ topic: "LL/fridge/FRIDGE_LL_01/meta", msg: { cfg: { interval_ms: 250 } } });
    clock.advance(1000);
    expect(take().filter((w) => w.schema === "telemetry/fridge")).toHaveLength(4);
  });

  it("inspect makes a SQAL station measure n samples tagged with the lot and idx", () => {
    const { clock, transport, device, take } = rig("sqal", { intervalMs: 60_000 }, "accept");
    device.start();
    clock.advance(150);
    take();
    transport.command("inspect", cmd({ id: "i1", lot: "LL2601001", n: 5, profile: "premium" }));
    transport.command("inspect", cmd({ id: "i2", lot: "LL2601002", n: 5 }));
    clock.advance(2000);
    const out = take();
    expect(out[0]!.msg).toMatchObject({ id: "i1", ok: true, data: { lot: "LL2601001", n: 5, profile: "premium" } });
    expect(out[1]!.msg).toMatchObject({ id: "i2", ok: false });
    expect(out[1]!.msg.err).toMatch(/busy/);
    const samples = out.filter((w) => w.schema === "telemetry/sqal");
    expect(samples.map((w) => [w.msg.lot, w.msg.idx])).toEqual([0, 1, 2, 3, 4].map((i) => ["LL2601001", i]));
    const done = out.find((w) => w.msg.type === "inspection_done");
    expect(done?.msg).toMatchObject({ data: { lot: "LL2601001", n: 5 } });
    // A premium lot contains no low or defective product.
    for (const s of samples) expect(["premium", "good", "acceptable"]).toContain((s.msg.sim as { tier: string }).tier);
  });

  it("reboot: offline status, clean close, new boot with seq from 0", () => {
    const { clock, transport, device, take } = rig("fridge", {}, "accept");
    device.start();
    clock.advance(2150);
    take();
    transport.command("reboot", cmd({ id: "r1", delay_ms: 100 }));
    clock.advance(100);
    const before = take();
    expect(before[0]!.msg).toMatchObject({ id: "r1", ok: true });
    expect(before.at(-1)!.msg).toMatchObject({ state: "offline", reason: "reboot: command" });
    expect(transport.closes).toEqual([true]);
    clock.advance(2000);
    expect(device.boot).toBe(2);
    const after = take();
    expect(after.find((w) => w.msg.type === "boot")?.msg).toMatchObject({ boot: 2, data: { reason: "command" } });
    expect(after.find((w) => w.schema === "telemetry/fridge")?.msg).toMatchObject({ boot: 2, seq: 0 });
  });
});
