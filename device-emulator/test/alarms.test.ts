import { describe, expect, it } from "vitest";
import { encodeCbor } from "@esp-fleet/schemas";
import { AlarmDebouncer, ALARM_FIELDS } from "../src/models/alarms.ts";
import { FRIDGE_PROFILE, type FridgeField } from "../src/profiles.ts";
import { deviceRig } from "./helpers.ts";

const HEALTHY: Record<FridgeField, number> = { t: 5, p_lo: 2.5, p_hi: 12, i_comp: 15, v_sup: 380, vib: 0.5, rh: 65, flow: 100 };
const P_HI = 1 << ALARM_FIELDS.indexOf("p_hi");
const T = 1 << ALARM_FIELDS.indexOf("t");

/** Feed a p_hi series; return the per-reading (raised, cleared) as "R", "C" or "". */
function run(d: AlarmDebouncer, pHi: number[]): string[] {
  return pHi.map((p) => {
    d.update({ ...HEALTHY, p_hi: p });
    return (d.raised & P_HI ? "R" : "") + (d.cleared & P_HI ? "C" : "");
  });
}

describe("fridge alarm debouncing (hysteresis + hold)", () => {
  it("a value hovering around a bound raises one alarm, not one per crossing", () => {
    // pression_anormale_HP: 25–35 bar against the 30 bar bound.
    const d = new AlarmDebouncer(FRIDGE_PROFILE);
    expect(run(d, [12, 31, 29, 32, 29.9, 33, 28, 30.5, 12])).toEqual(["", "R", "", "", "", "", "", "", ""]);
    expect(d.mask).toBe(P_HI);
  });

  it("clears only after clearReadings consecutive readings inside the bounds narrowed by the margin", () => {
    const d = new AlarmDebouncer(FRIDGE_PROFILE); // margin 5 % of 0…30 = 1.5 bar → ≤ 28.5; 5 readings
    // 29 is in bounds but inside the hysteresis band: it does not count; 31 resets the streak.
    expect(run(d, [31, 12, 12, 29, 12, 12, 12, 12, 31, 12, 12, 12, 12, 12, 12])).toEqual([
      "R",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "C",
      "",
    ]);
    expect(d.mask).toBe(0);
    // and raises again on the next excursion
    expect(run(d, [30.1])).toEqual(["R"]);
  });

  it("with no margin and a 1-reading hold it is the undebounced behaviour (raise on entry, clear on return)", () => {
    const d = new AlarmDebouncer({ bounds: FRIDGE_PROFILE.bounds, alarm: { clearMargin: 0, clearReadings: 1 } });
    const series = [12, 31, 29, 32, 29.9, 33, 28, 30.5, 12];
    const undebounced = series.map((p, i) => {
      const was = i > 0 && (series[i - 1] as number) > 30;
      const out = p > 30;
      return out && !was ? "R" : !out && was ? "C" : "";
    });
    expect(run(d, series)).toEqual(undebounced);
  });

  it("fields are independent; reset() forgets every alarm", () => {
    const d = new AlarmDebouncer(FRIDGE_PROFILE);
    d.update({ ...HEALTHY, t: -999, p_hi: 31 });
    expect(d.raised).toBe(T | P_HI);
    for (let i = 0; i < 5; i++) d.update({ ...HEALTHY, p_hi: 31 });
    expect(d.cleared).toBe(T); // t back for 5 readings, p_hi still high
    expect(d.mask).toBe(P_HI);
    d.reset();
    expect(d.mask).toBe(0);
    d.update({ ...HEALTHY, p_hi: 31 });
    expect(d.raised).toBe(P_HI);
  });

  it("an injected abnormal-high-pressure fault gives one alarm and one alarm_cleared on the wire", () => {
    const { clock, transport, device, take } = deviceRig("fridge", {
      seed: "hp",
      mode: "accept",
      options: { faultProb: 0, intervalMs: 1000, wifiJoinMs: [10, 10], i2cErrorProb: 0 },
    });
    device.start();
    clock.advance(5000);
    transport.take();
    transport.command("fault", encodeCbor({ id: "f1", action: "inject", fault: "pression_anormale_HP", cycles: 20 }));
    clock.advance(40_000);
    const out = take();
    const readings = out.filter((w) => w.schema === "telemetry/fridge").map((w) => w.msg.p_hi as number);
    // The fault's readings do cross the bound back and forth (the case that used to flap) …
    let crossings = 0;
    for (let i = 1; i < readings.length; i++) if ((readings[i - 1] as number) > 30 !== (readings[i] as number) > 30) crossings++;
    expect(crossings).toBeGreaterThan(4);
    // … yet the controller raised one alarm and cleared it once, after the fault.
    const alarms = out.filter((w) => w.msg.type === "alarm" || w.msg.type === "alarm_cleared");
    expect(alarms.map((w) => [w.msg.type, (w.msg.data as { field: string }).field])).toEqual([
      ["alarm", "p_hi"],
      ["alarm_cleared", "p_hi"],
    ]);
    const clearedAt = out.indexOf(alarms[1]!);
    const faultEnd = out.findIndex((w) => w.msg.type === "sim_fault_cleared");
    expect(clearedAt).toBeGreaterThan(faultEnd);
    void device.stop();
  });
});
