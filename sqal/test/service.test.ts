import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestBroker, waitFor, type TestBroker } from "@esp-fleet/common/testing";
import { createRng } from "@esp-fleet/common/random";
import { decodeMessage, deviceTopic, encodeCbor, serviceTopic, NOMINAL_FRIDGE } from "@esp-fleet/schemas";
import type { Db } from "@esp-fleet/db";
import { connect, publishLot, scriptedStation, startSqal, tempDb } from "./helpers.ts";
import { synthSample } from "../src/testing/synth.ts";

type Lot = {
  status: string;
  transitions: { from_status: string | null; to_status: string; reason: string }[];
  samples: { grade: string; inspection_id: number | null }[];
  inspections: { outcome: string | null; graded: number }[];
  reason: string;
  attempts: number;
  feeding: { records: number };
};

let broker: TestBroker;
let store: { db: Db; close(): Promise<void> };
const cleanups: (() => Promise<void>)[] = [];

// One database for the file (PGlite start-up costs seconds; PostgreSQL when TEST_DATABASE_URL is set);
// every test uses its own lot codes and devices. One broker per test.
beforeAll(async () => {
  store = await tempDb();
});
afterAll(async () => {
  await store.close();
});
beforeEach(async () => {
  broker = await startTestBroker();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await broker.close();
});

async function lot(app: Awaited<ReturnType<typeof startSqal>>["app"], code: string): Promise<Lot | undefined> {
  const r = await app.inject({ method: "GET", url: `/api/v1/lots/${code}` });
  return r.statusCode === 200 ? (r.json() as Lot) : undefined;
}

describe("lot life cycle (scripted station and feeding publisher)", () => {
  it("feeding → pending → inspecting → inspected → decision, with exactly N graded samples, published and visible over HTTP", async () => {
    const s = await startSqal(store.db, broker.url, { samplesPerLot: 4 });
    cleanups.push(s.stop);
    const station = await scriptedStation(broker.url, { site: "LL" });
    cleanups.push(station.close);
    const watcher = await connect(broker.url);
    cleanups.push(() => watcher.endAsync());
    const statuses: string[] = [];
    watcher.on("message", (topic, payload) => {
      if (topic === serviceTopic("sqal", "lots", "LL2512001", "status")) {
        const d = decodeMessage(topic, payload);
        if (d.ok) statuses.push((d.value.message as { status: string }).status);
      }
    });
    await watcher.subscribeAsync("svc/sqal/#", { qos: 1 });
    const feeder = await connect(broker.url);
    cleanups.push(() => feeder.endAsync());
    await publishLot(feeder, { lot: "LL2512001", site: "LL", weight: 6600, mortality: 1 });

    const done = await waitFor(async () => {
      const l = await lot(s.app, "LL2512001");
      return l && ["approved", "rejected"].includes(l.status) ? l : undefined;
    }, "lot decided");
    expect(done.transitions.map((t) => t.to_status)).toEqual(["feeding", "pending", "inspecting", "inspected", done.status]);
    expect(done.samples).toHaveLength(4);
    expect(done.samples.every((x) => x.inspection_id !== null)).toBe(true);
    expect(done.inspections).toEqual([expect.objectContaining({ outcome: "done", graded: 4 })]);
    expect(done.feeding.records).toBe(4);
    expect(station.commands).toEqual([expect.objectContaining({ lot: "LL2512001", n: 4, profile: "premium" })]);
    await waitFor(() => statuses.includes(done.status), "decision published on svc/sqal/lots/LL2512001/status");
    expect(statuses).toEqual(["feeding", "pending", "inspecting", "inspected", done.status]);

    // the list API and its filters
    const list = (await s.app.inject({ method: "GET", url: `/api/v1/lots?status=${done.status}&site=LL` })).json() as {
      lots: { code: string }[];
    };
    expect(list.lots.map((l) => l.code)).toEqual(["LL2512001"]);
    expect(((await s.app.inject({ method: "GET", url: "/api/v1/lots?site=XX" })).json() as { lots: unknown[] }).lots).toEqual([]);
    const samples = await s.app.inject({ method: "GET", url: "/api/v1/lots/LL2512001/samples" });
    expect(samples.statusCode, samples.body).toBe(200);
    expect((samples.json() as { samples: unknown[] }).samples).toHaveLength(4);
    const metrics = (await s.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/esp_fleet_sqal_lots\{status="(approved|rejected)"\} 1/);
    expect(metrics).toMatch(/esp_fleet_sqal_samples_total\{grade="A\+"\}/);

    // re-inspection of a decided lot goes round again
    const re = await s.app.inject({ method: "POST", url: "/api/v1/lots/LL2512001/inspect" });
    expect(re.statusCode).toBe(202);
    const again = await waitFor(async () => {
      const l = await lot(s.app, "LL2512001");
      return l && l.inspections.length === 2 && ["approved", "rejected"].includes(l.status) ? l : undefined;
    }, "lot decided again");
    expect(again.samples).toHaveLength(8);
    expect(again.inspections.map((i) => i.graded)).toEqual([4, 4]);
  });

  it("never counts a sample twice: a redelivered sample is a duplicate", async () => {
    const s = await startSqal(store.db, broker.url);
    cleanups.push(s.stop);
    const pub = await connect(broker.url);
    cleanups.push(() => pub.endAsync());
    const sample = synthSample(createRng(3), { dev: "ESP32_XX_09", seq: 7 });
    const topic = deviceTopic({ site: "XX", kind: "sqal", dev: "ESP32_XX_09" }, "telemetry");
    for (let i = 0; i < 3; i++) await pub.publishAsync(topic, Buffer.from(encodeCbor(sample)), { qos: 1 });
    await pub.publishAsync(topic, Buffer.from([0xff, 0x00]), { qos: 1 }); // not CBOR: refused, counted
    await waitFor(() => s.sqal.stats().received >= 4, "messages handled");
    await s.sqal.idle();
    expect(s.sqal.stats()).toMatchObject({ graded: 1, duplicates: 2, invalid: 1 });
    const rows = await store.db.query<{ n: number }>("SELECT count(*)::int AS n FROM sqal_grades WHERE dev = 'ESP32_XX_09'");
    expect(rows.rows[0]!.n).toBe(1);
  });

  it("no online station at the site: retries with backoff, then error with the reason", async () => {
    const s = await startSqal(store.db, broker.url, { maxAttempts: 3, retryBaseMs: 20 });
    cleanups.push(s.stop);
    const feeder = await connect(broker.url);
    cleanups.push(() => feeder.endAsync());
    await publishLot(feeder, { lot: "MT2512001", site: "MT" });
    const failed = await waitFor(async () => {
      const l = await lot(s.app, "MT2512001");
      return l?.status === "error" ? l : undefined;
    }, "lot in error");
    expect(failed.attempts).toBe(3);
    expect(failed.reason).toMatch(/no online SQAL station at site MT; gave up after 3 attempt/);
    expect(failed.transitions.map((t) => t.to_status)).toEqual(["feeding", "pending", "error"]);
  });

  it("a station that refuses, or never delivers: retry, then error; each attempt recorded", async () => {
    const s = await startSqal(store.db, broker.url, { maxAttempts: 2, retryBaseMs: 20, inspectionTimeoutMs: 300 });
    cleanups.push(s.stop);
    const refusing = await scriptedStation(broker.url, { site: "LS", refuse: "busy: calibrating" });
    cleanups.push(refusing.close);
    const feeder = await connect(broker.url);
    cleanups.push(() => feeder.endAsync());
    await publishLot(feeder, { lot: "LS2512001", site: "LS" });
    const failed = await waitFor(async () => {
      const l = await lot(s.app, "LS2512001");
      return l?.status === "error" ? l : undefined;
    }, "refused lot in error");
    expect(failed.inspections.map((i) => i.outcome)).toEqual(["refused", "refused"]);
    expect(failed.reason).toContain("busy: calibrating");
    expect(failed.transitions.map((t) => t.to_status)).toEqual([
      "feeding",
      "pending",
      "inspecting",
      "pending",
      "inspecting",
      "error",
    ]);

    await refusing.close();
    const silent = await scriptedStation(broker.url, { site: "LS", dev: "ESP32_LS_02", samples: 2 });
    cleanups.push(silent.close);
    await publishLot(feeder, { lot: "LS2512002", site: "LS", boot: 2 });
    const timedOut = await waitFor(async () => {
      const l = await lot(s.app, "LS2512002");
      return l?.status === "error" ? l : undefined;
    }, "timed-out lot in error");
    expect(timedOut.inspections.map((i) => i.outcome)).toEqual(["timeout", "timeout"]);
    expect(timedOut.reason).toMatch(/[0-2]\/5 samples after 300 ms/);
  });

  it("restart-safe: a monitor restarted mid-inspection resumes and counts exactly N", async () => {
    const first = await startSqal(store.db, broker.url, { clientId: "sqal-restart", inspectionTimeoutMs: 60_000 });
    const station = await scriptedStation(broker.url, { site: "LL", samples: "none" });
    cleanups.push(station.close);
    const feeder = await connect(broker.url);
    cleanups.push(() => feeder.endAsync());
    await publishLot(feeder, { lot: "LL2512002", site: "LL" });
    await waitFor(async () => (await lot(first.app, "LL2512002"))?.status === "inspecting", "inspecting");
    const cmd = await waitFor(() => station.commands[0], "inspect command");
    const addr = { site: "LL", kind: "sqal" as const, dev: station.dev };
    const rng = createRng(9);
    const samples = Array.from({ length: 5 }, (_, i) => ({
      ...synthSample(rng, { dev: station.dev, seq: 100 + i }),
      lot: cmd.lot,
      idx: i,
    }));
    for (const x of samples.slice(0, 3))
      await station.client.publishAsync(deviceTopic(addr, "telemetry"), Buffer.from(encodeCbor(x)), { qos: 1 });
    await waitFor(() => first.sqal.stats().graded === 3, "3 graded before the restart");
    await first.stop();

    // while sqal is down: the rest, plus a redelivery of one already counted
    for (const x of [...samples.slice(3), samples[0]!])
      await station.client.publishAsync(deviceTopic(addr, "telemetry"), Buffer.from(encodeCbor(x)), { qos: 1 });
    const second = await startSqal(store.db, broker.url, { clientId: "sqal-restart", inspectionTimeoutMs: 60_000 });
    cleanups.push(second.stop);
    const done = await waitFor(async () => {
      const l = await lot(second.app, "LL2512002");
      return l && ["approved", "rejected"].includes(l.status) ? l : undefined;
    }, "decided after restart");
    expect(done.samples).toHaveLength(5);
    expect(done.inspections).toEqual([expect.objectContaining({ outcome: "done", graded: 5 })]);
    expect(second.sqal.stats()).toMatchObject({ graded: 2, duplicates: 1 });
  });
});

describe("HTTP API validation", () => {
  it("answers 400 with the reason, 404 for unknown lots, 409 for a lot still in progress", async () => {
    const s = await startSqal(store.db, broker.url);
    cleanups.push(s.stop);
    const bad = await s.app.inject({
      method: "POST",
      url: "/api/v1/simulations",
      payload: { cycles: 0, interval: 5000, fault_prob: 2 },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: "BAD_INPUT" });
    expect((bad.json() as { message: string }).message).toMatch(/cycles.*interval.*fault_prob/s);
    expect((await s.app.inject({ method: "POST", url: "/api/v1/simulations", payload: { bogus: 1 } })).statusCode).toBe(400);
    expect((await s.app.inject({ method: "GET", url: "/api/v1/lots/LL2599999" })).statusCode).toBe(404);
    expect((await s.app.inject({ method: "GET", url: "/api/v1/lots/not-a-code" })).statusCode).toBe(400);
    expect((await s.app.inject({ method: "GET", url: "/api/v1/lots?status=nope" })).statusCode).toBe(400);
    expect((await s.app.inject({ method: "POST", url: "/api/v1/lots/LL2599999/inspect" })).statusCode).toBe(404);
    const feeder = await connect(broker.url);
    cleanups.push(() => feeder.endAsync());
    await publishLot(feeder, { lot: "LL2512003", site: "LL", records: 2 });
    await waitFor(async () => (await lot(s.app, "LL2512003"))?.status, "lot exists");
    const conflict = await s.app.inject({ method: "POST", url: "/api/v1/lots/LL2512003/inspect" });
    expect([409]).toContain(conflict.statusCode);
    const ready = await s.app.inject({ method: "GET", url: "/health/ready" });
    expect(ready.statusCode).toBe(200);
  });
});

describe("simulations over HTTP", () => {
  it("POST starts an emulated fleet (202 + id), GET follows it to the end; its readings reach sqal", async () => {
    const s = await startSqal(store.db, broker.url);
    cleanups.push(s.stop);
    const res = await s.app.inject({
      method: "POST",
      url: "/api/v1/simulations",
      payload: { devices: 2, kinds: ["fridge"], sites: ["SIM"], cycles: 5, interval: 60, fault_prob: 0.5, accel: 600, seed: 4 },
    });
    expect(res.statusCode, res.body).toBe(202);
    const view = res.json() as { id: string; status: string };
    expect(view.status).toBe("running");
    expect(res.headers.location).toBe(`/api/v1/simulations/${view.id}`);
    const done = await waitFor(async () => {
      const v = (await s.app.inject({ method: "GET", url: `/api/v1/simulations/${view.id}` })).json() as {
        status: string;
        stats: { readings: number };
      };
      return v.status === "done" ? v : undefined;
    }, "simulation done");
    expect(done.stats.readings).toBe(10);
    await waitFor(() => s.sqal.stats().fridgeReadings >= 10, "fridge readings diagnosed");
    const list = (await s.app.inject({ method: "GET", url: "/api/v1/simulations" })).json() as { simulations: { id: string }[] };
    expect(list.simulations.map((x) => x.id)).toContain(view.id);
    expect(
      (await s.app.inject({ method: "GET", url: "/api/v1/simulations/00000000-0000-4000-8000-000000000000" })).statusCode,
    ).toBe(404);
  });
});

describe("fridge diagnosis over MQTT", () => {
  it("raises and clears events, stores them and scores against ground truth", async () => {
    const s = await startSqal(store.db, broker.url);
    cleanups.push(s.stop);
    const pub = await connect(broker.url);
    cleanups.push(() => pub.endAsync());
    const dev = "FRIDGE_LL_01";
    const topic = deviceTopic({ site: "LL", kind: "fridge", dev }, "telemetry");
    const healthy = { ...NOMINAL_FRIDGE };
    const readings = [
      { ...healthy, sim: { fault: null } },
      { ...healthy, p_hi: 30, i_comp: 24, sim: { fault: "pression_anormale_HP" } },
      { ...healthy, p_hi: 31, i_comp: 25, sim: { fault: "pression_anormale_HP" } },
      { ...healthy, sim: { fault: null } },
    ];
    let seq = 0;
    for (const r of readings)
      await pub.publishAsync(
        topic,
        Buffer.from(encodeCbor({ v: 1, dev, boot: 1, seq: seq++, ts: 1_760_000_000_000 + seq, ...r })),
        { qos: 1 },
      );
    await waitFor(() => s.sqal.stats().fridgeReadings === 4, "readings handled");
    await s.sqal.idle();
    const events = (await s.app.inject({ method: "GET", url: `/api/v1/diagnosis/events?dev=${dev}` })).json() as {
      events: { type: string; fault: string }[];
    };
    expect(events.events.map((e) => [e.type, e.fault])).toEqual([
      ["cleared", "pression_anormale_HP"],
      ["raised", "pression_anormale_HP"],
    ]);
    const diag = (await s.app.inject({ method: "GET", url: "/api/v1/diagnosis" })).json() as {
      report: { episodes: number; identified: number; falseAlarms: number };
    };
    expect(diag.report).toMatchObject({ episodes: 1, identified: 1, falseAlarms: 0 });
    const metrics = (await s.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toContain(
      'esp_fleet_sqal_diagnosis_confusion_total{truth="pression_anormale_HP",diagnosis="pression_anormale_HP"} 2',
    );
  });
});
