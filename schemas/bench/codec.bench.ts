/**
 * bench:codec — encode + decode + validate throughput and wire size of a SQAL sample and a fridge
 * reading, CBOR (this codec) vs JSON (JSON.stringify + JSON.parse + the same zod validation).
 * Target (issue #2): SQAL sample CBOR encode+decode+validate ≥ 50,000/s on one core; CBOR ≤ ½ JSON size.
 * "zod runtime" lines validate with the schema's own safeParse, "cbor-x" lines decode with cbor-x alone
 * (decodeCborReference): together, what decodeMessage did before issue #2's work. "compiled" validates with
 * compiledSchema(schema).safeParse and "reader" decodes with decodeCbor (hot-path reader, cbor-x fallback):
 * what decodeMessage does now.
 * Usage: npm run bench:codec [-- --seconds 3]
 */
import {
  decodeCbor,
  decodeCborReference,
  decodeMessage,
  encodeCbor,
  parseTopic,
  schemaFor,
  toJsonValue,
  FridgeReadingSchema,
  SqalSampleSchema,
} from "../src/index.ts";
import { compiledSchema } from "../src/fast-validate.ts";
import { createRng } from "@esp-fleet/common/random";

const seconds = Number(process.argv[process.argv.indexOf("--seconds") + 1]) || 3;
const rng = createRng(7);
const sample = {
  v: 1,
  dev: "ESP32_LL_01",
  boot: 12,
  seq: 345,
  ts: 1_764_547_200_123,
  sample: "S-12-345",
  lot: "LL2512001",
  idx: 3,
  tof: {
    dist: Uint16Array.from({ length: 64 }, () => rng.int(15, 100)),
    status: Uint8Array.from({ length: 64 }, () => 5),
    refl: Uint8Array.from({ length: 64 }, () => rng.int(30, 60)),
    amp: Uint16Array.from({ length: 64 }, () => rng.int(500, 4095)),
    amb: 4,
    h: 100,
  },
  spec: {
    f1: 412,
    f2: 598,
    f3: 505,
    f4: 1890,
    f5: 911,
    f6: 603,
    f7: 1148,
    f8: 752,
    clear: 6480,
    nir: 611,
    gain: 3,
    atime: 29,
    astep: 599,
  },
  temp: 24.5,
};
const fridge = {
  v: 1,
  dev: "FRIDGE_LL_01",
  boot: 3,
  seq: 9001,
  ts: 1_764_547_200_123,
  t: 4.82,
  t_evap: -8.4,
  p_lo: 2.47,
  p_hi: 11.9,
  i_comp: 15.3,
  v_sup: 379.6,
  vib: 0.52,
  rh: 64.1,
  flow: 99.7,
  door: false,
  comp: true,
  defrost: false,
  sim: { fault: null },
};

function measure(name: string, fn: () => void): number {
  for (let i = 0; i < 2000; i++) fn(); // warm up
  let n = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 500; i++) fn();
    n += 500;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  console.log(`  ${name.padEnd(62)} ${Math.round(rate).toLocaleString("en-US").padStart(10)} ops/s`);
  return rate;
}

const results: Record<string, number> = {};
for (const [label, msg, topic, schema] of [
  ["SQAL sample", sample, "LL/sqal/ESP32_LL_01/telemetry", SqalSampleSchema],
  ["fridge reading", fridge, "LL/fridge/FRIDGE_LL_01/telemetry", FridgeReadingSchema],
] as const) {
  const cbor = encodeCbor(msg);
  const json = Buffer.from(JSON.stringify(toJsonValue(msg)));
  console.log(`${label}: CBOR ${cbor.length} B, JSON ${json.length} B (CBOR/JSON = ${(cbor.length / json.length).toFixed(2)})`);
  results[`${label} cbor`] = measure(`${label}: CBOR encode+decode+validate`, () => {
    const r = decodeMessage(topic, encodeCbor(msg));
    if (!r.ok) throw new Error(r.error.error);
  });
  const plain = toJsonValue(msg);
  results[`${label} json`] = measure(`${label}: JSON stringify+parse+validate`, () => {
    const r = (schema as typeof SqalSampleSchema).safeParse(JSON.parse(JSON.stringify(plain)));
    if (!r.success) throw new Error(r.error.message);
  });
  const zodSchema = schema as typeof SqalSampleSchema;
  const compiled = compiledSchema(zodSchema);
  const value = (r: ReturnType<typeof decodeCbor>) => {
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };
  // decodeMessage as it was before issue #2's work: the same steps, cbor-x and the zod runtime parser.
  const decodeMessageBefore = (bytes: Uint8Array) => {
    const t = parseTopic(topic);
    if (!t.ok) throw new Error(t.error);
    const raw = value(decodeCborReference(bytes));
    return schemaFor(t.value)!.schema.safeParse(raw);
  };
  results[`${label} cbor before`] = measure(`${label}: CBOR enc+dec+validate (before: cbor-x, zod runtime)`, () => {
    if (!decodeMessageBefore(encodeCbor(msg)).success) throw new Error("invalid");
  });
  measure(`${label}: CBOR encode only`, () => encodeCbor(msg));
  measure(`${label}: CBOR decode+validate only`, () => decodeMessage(topic, cbor));
  measure(`${label}: CBOR decode+validate only (before)`, () => decodeMessageBefore(cbor));
  measure(`${label}: CBOR decode only (cbor-x)`, () => value(decodeCborReference(cbor)));
  measure(`${label}: CBOR decode only (reader)`, () => value(decodeCbor(cbor)));
  measure(`${label}: CBOR decode+validate (cbor-x, zod runtime)`, () => zodSchema.safeParse(value(decodeCborReference(cbor))));
  measure(`${label}: CBOR decode+validate (cbor-x, compiled)`, () => compiled.safeParse(value(decodeCborReference(cbor))));
  measure(`${label}: CBOR decode+validate (reader, compiled)`, () => compiled.safeParse(value(decodeCbor(cbor))));
  const decoded = value(decodeCbor(cbor));
  measure(`${label}: validate only (zod runtime)`, () => zodSchema.safeParse(decoded));
  measure(`${label}: validate only (compiled)`, () => compiled.safeParse(decoded));
}
const target = results["SQAL sample cbor"]! >= 50_000 ? "meets" : "MISSES";
console.log(
  `\nSQAL sample encode+decode+validate: ${Math.round(results["SQAL sample cbor"]!).toLocaleString("en-US")}/s — ${target} the 50,000/s target` +
    ` (with cbor-x and the zod runtime parser, as before: ${Math.round(results["SQAL sample cbor before"]!).toLocaleString("en-US")}/s)`,
);
