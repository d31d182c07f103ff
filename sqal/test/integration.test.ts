import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acceleratedClock } from "@esp-fleet/common/clock";
import { silentLogger } from "@esp-fleet/common/logger";
import { startTestBroker, waitFor, type TestBroker } from "@esp-fleet/common/testing";
import { QUALITY_TIERS, type Grade } from "@esp-fleet/schemas";
import { startFleet, type DeviceSpec, type Fleet } from "@esp-fleet/device-emulator";
import type { Db } from "@esp-fleet/db";
import { startSqal, tempDb } from "./helpers.ts";

/**
 * End to end with the real emulator: feeding stations (`gavage`) fatten lots at high acceleration,
 * emulated SQAL stations answer `cmd/inspect`, a real Aedes in between, the sqal service on a real
 * database. Every lot that becomes ready must go feeding → pending → inspecting → inspected →
 * approved | rejected with exactly N graded samples, visible through the API; and the grades of the
 * stations' routine samples must follow the product tier mix.
 */
const N = 5;
const LOTS = 6;
const SIM_PER_WALL = 6 * 86_400; // one simulated day ≈ 170 ms of wall time: a 12-day lot in 2 s

const specs: DeviceSpec[] = [
  { dev: "GAVAGE_LL_01", kind: "gavage", site: "LL", ordinal: 1, siteCount: 2 },
  { dev: "GAVAGE_LL_02", kind: "gavage", site: "LL", ordinal: 2, siteCount: 2 },
  { dev: "GAVAGE_LS_01", kind: "gavage", site: "LS", ordinal: 1, siteCount: 1 },
  { dev: "ESP32_LL_01", kind: "sqal", site: "LL", ordinal: 1, siteCount: 2 },
  { dev: "ESP32_LL_02", kind: "sqal", site: "LL", ordinal: 2, siteCount: 2 },
  { dev: "ESP32_LS_01", kind: "sqal", site: "LS", ordinal: 1, siteCount: 1 },
];

let broker: TestBroker;
let store: { db: Db; close(): Promise<void> };
let service: Awaited<ReturnType<typeof startSqal>>;
let fleet: Fleet | undefined;

beforeAll(async () => {
  broker = await startTestBroker();
  store = await tempDb();
  service = await startSqal(store.db, broker.url, { samplesPerLot: N, inspectionTimeoutMs: 20_000, retryBaseMs: 200 });
});
afterAll(async () => {
  await fleet?.stop().catch(() => undefined);
  await service?.stop();
  await broker?.close();
  await store?.close();
});

type LotRow = { code: string; status: string };
type LotDetail = {
  status: string;
  samples_n: number;
  transitions: { to_status: string }[];
  samples: { grade: Grade; inspection_id: number | null; idx: number }[];
  inspections: { outcome: string; graded: number; n: number }[];
};

describe("emulated fleet → broker → sqal → database → API", () => {
  it(
    `drives ${LOTS}+ lots from feeding to a decision with exactly ${N} graded samples each, and grades follow the tier mix`,
    { timeout: 90_000 },
    async () => {
      fleet = await startFleet({
        url: broker.url,
        specs,
        seed: 2025,
        accel: 86_400,
        clock: acceleratedClock(SIM_PER_WALL),
        intervalMs: 30, // SQAL routine samples every 43 simulated minutes
        faultProb: 0,
        logger: silentLogger(),
        firmware: { i2cErrorProb: 0 },
      });
      const decided = await waitFor(
        async () => {
          const r = await service.app.inject({ method: "GET", url: "/api/v1/lots?limit=1000" });
          const lots = (r.json() as { lots: LotRow[] }).lots;
          const done = lots.filter((l) => l.status === "approved" || l.status === "rejected");
          const graded = await store.db.query<{ n: number }>("SELECT count(*)::int AS n FROM sqal_grades WHERE lot IS NULL");
          if (process.env.SQAL_DEBUG) {
            const ins = await store.db.query(
              "SELECT lot, station, outcome, error, requested_at, accepted_at, finished_at, (SELECT count(*) FROM sqal_grades g WHERE g.inspection_id = i.id) AS n, (SELECT count(*) FROM sqal_grades g WHERE g.lot = i.lot) AS tagged FROM sqal_inspections i ORDER BY id",
            );
            process.stderr.write(`INS ${JSON.stringify(ins.rows)}\n`);
          }
          if (process.env.SQAL_DEBUG)
            process.stderr.write(
              `${JSON.stringify(lots.map((l) => l.status))} graded=${graded.rows[0]!.n} ${JSON.stringify(fleet?.stats())}\n`,
            );
          return done.length >= LOTS && graded.rows[0]!.n >= 1000 ? done : undefined;
        },
        `${LOTS} lots decided and 1000 routine samples graded`,
        60_000,
        200,
      );
      await fleet.stop();
      fleet = undefined;

      for (const { code } of decided) {
        const r = await service.app.inject({ method: "GET", url: `/api/v1/lots/${code}` });
        expect(r.statusCode).toBe(200);
        const lot = r.json() as LotDetail;
        expect(
          lot.transitions.map((t) => t.to_status),
          code,
        ).toEqual(["feeding", "pending", "inspecting", "inspected", lot.status]);
        expect(lot.inspections, code).toEqual([expect.objectContaining({ outcome: "done", graded: N, n: N })]);
        const counted = lot.samples.filter((s) => s.inspection_id !== null);
        expect(counted, code).toHaveLength(N);
        expect(counted.map((s) => s.idx).sort(), code).toEqual([0, 1, 2, 3, 4]);
      }
      const all = (await service.app.inject({ method: "GET", url: "/api/v1/lots?limit=1000" })).json() as { lots: LotRow[] };
      expect(all.lots.filter((l) => l.status === "error")).toEqual([]);

      // Routine samples (not part of a lot): drawn from the population mix premium 15 %, good 40 %,
      // acceptable 30 %, low 10 %, defective 5 % — the grades must follow it (A+, A, B, C, REJECT).
      const rows = await store.db.query<{ grade: Grade; sim_tier: string; n: number }>(
        "SELECT grade, sim_tier, count(*)::int AS n FROM sqal_grades WHERE lot IS NULL GROUP BY grade, sim_tier",
      );
      const total = rows.rows.reduce((a, r) => a + r.n, 0);
      const share = (g: Grade) => rows.rows.filter((r) => r.grade === g).reduce((a, r) => a + r.n, 0) / total;
      const expected: Record<Grade, number> = { "A+": 0.15, A: 0.4, B: 0.3, C: 0.1, REJECT: 0.05 };
      const observed = Object.fromEntries((Object.keys(expected) as Grade[]).map((g) => [g, Math.round(share(g) * 1000) / 1000]));
      if (process.env.SQAL_DEBUG) process.stderr.write(`GRADES n=${total} ${JSON.stringify(observed)}\n`);
      for (const g of Object.keys(expected) as Grade[])
        expect(Math.abs(share(g) - expected[g]), `${g}: ${JSON.stringify(observed)}`).toBeLessThanOrEqual(0.08);
      // and, per true tier, the most frequent grade is the tier's own
      const own: Record<string, Grade> = { premium: "A+", good: "A", acceptable: "B", low: "C", defective: "REJECT" };
      for (const tier of QUALITY_TIERS) {
        const byGrade = rows.rows.filter((r) => r.sim_tier === tier).sort((a, b) => b.n - a.n);
        expect(byGrade[0]?.grade, tier).toBe(own[tier]);
      }
      const metrics = (await service.app.inject({ method: "GET", url: "/metrics" })).body;
      expect(metrics).toMatch(/esp_fleet_sqal_lots\{status="approved"\} \d+/);
    },
  );
});
