import { z } from "zod";
import { AS7341_CHANNELS, FAULT_IDS, GENETICS, INSPECTION_PROFILES, LOT_CODE_RE, QUALITY_TIERS, TOF_ZONES } from "./domain.ts";
import { DeviceKindSchema, SegmentSchema } from "./topics.ts";

/**
 * Every device message (DESIGN §3). Standard CBOR maps with short text keys; packed numeric arrays as
 * RFC 8746 typed arrays (tag 69 = uint16 LE, tag 64 = uint8 — also for a uint16 field whose values all fit
 * in a byte, the smallest form). A plain CBOR array of integers is accepted
 * too (and normalised to the typed array), so an encoder without typed-array support still interoperates.
 */

export const SCHEMA_VERSION = 1;

const uint = z.number().int().nonnegative();
const u16 = z.number().int().min(0).max(65535);
const u8 = z.number().int().min(0).max(255);

/** How a typed-array field is checked and normalised; shared by the zod schema and the compiled validator. */
export interface TypedArrayField {
  name: "uint8" | "uint16";
  length: number;
  max: number;
  /** True when `v` is acceptable for this field. */
  accepts(v: unknown): boolean;
  /** The declared typed array for an accepted `v` (the same object when it already is one). */
  normalize(v: unknown): Uint8Array | Uint16Array;
}

// Keyed by the schema's definition, which `.describe()`/`.meta()` clones share with the original.
const TYPED_ARRAY_FIELDS = new WeakMap<object, TypedArrayField>();

/** The typed-array field behind `schema` (or a described copy of it); undefined for any other schema. */
export function typedArrayField(schema: z.ZodType): TypedArrayField | undefined {
  return TYPED_ARRAY_FIELDS.get(schema._zod.def);
}

/**
 * `length` × uint8/uint16: a typed array (RFC 8746 tag 64/69; a byte string for uint8) or a plain array of
 * integers in range (normalised to the typed array). Checked by one predicate rather than a zod union:
 * this sits on the hot path of every SQAL sample, and the union was a third of its validation time.
 */
function typedArray<T extends Uint8Array | Uint16Array>(
  name: "uint8" | "uint16",
  Ctor: { new (a: ArrayLike<number>): T; from(a: ArrayLike<number>): T },
  max: number,
  length: number,
) {
  const isInt = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= max;
  const wide = name === "uint16";
  const field: TypedArrayField = {
    name,
    length,
    max,
    // A uint16 field also takes a uint8 typed array: encoders send one when every value fits in a byte.
    accepts: (v) =>
      v instanceof Ctor || (wide && v instanceof Uint8Array)
        ? (v as ArrayLike<number>).length === length
        : Array.isArray(v) && v.length === length && v.every(isInt),
    normalize: (v) => (v instanceof Ctor ? v : Ctor.from(v as ArrayLike<number>)),
  };
  const schema = z
    .custom<T | number[]>(field.accepts, {
      error: (iss) => {
        const v = iss.input as { length?: unknown } | null;
        const got = v !== null && typeof v === "object" && typeof v.length === "number" ? v.length : undefined;
        return got !== undefined && got !== length
          ? `expected ${length} ${name} values, got ${got}`
          : `expected ${length} ${name} values (a typed array, or integers 0-${max})`;
      },
    })
    .transform((v) => field.normalize(v) as T)
    .meta({
      description: wide
        ? `${length} × ${name} (RFC 8746 tag 69; tag 64 when every value fits in a byte; or a plain array)`
        : `${length} × ${name} (RFC 8746 tag 64, or a plain array)`,
      typedArray: { items: max, length },
    });
  TYPED_ARRAY_FIELDS.set(schema._zod.def, field);
  return schema;
}
const uint16Array = (length: number) => typedArray("uint16", Uint16Array, 65535, length);
const uint8Array = (length: number) => typedArray("uint8", Uint8Array, 255, length);

export const EnvelopeSchema = z.object({
  v: z.literal(SCHEMA_VERSION).describe("payload schema version"),
  dev: SegmentSchema.describe("device id"),
  boot: uint.describe("boot counter, persisted across reboots"),
  seq: uint.describe("per-boot sequence number, +1 per message on this channel"),
  ts: uint.describe("device clock, ms since the Unix epoch"),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;

export const LotCodeSchema = z.string().regex(LOT_CODE_RE, "must be {SITE}{YYMM}{NNN}, e.g. LL2512001");
export const FaultIdSchema = z.enum(FAULT_IDS);

// ---------------------------------------------------------------- SQAL station (VL53L8CH + AS7341)

export const TofFrameSchema = z.object({
  dist: uint16Array(TOF_ZONES).describe("distance per zone, mm, row-major 8×8"),
  status: uint8Array(TOF_ZONES).describe("target status per zone (5 = valid)"),
  refl: uint8Array(TOF_ZONES).describe("reflectance per zone, %"),
  amp: uint16Array(TOF_ZONES).describe("signal amplitude per zone, 0-4095"),
  amb: u16.optional().describe("ambient rate, kcps/SPAD (frame mean)"),
  h: u16.default(100).describe("sensor height above the tray floor, mm"),
});
export type TofFrame = z.infer<typeof TofFrameSchema>;

export const SpectralSchema = z.object({
  ...(Object.fromEntries(AS7341_CHANNELS.map((c) => [c, u16.describe(`AS7341 ${c.toUpperCase()} count`)])) as Record<
    (typeof AS7341_CHANNELS)[number],
    typeof u16
  >),
  gain: z.number().int().min(0).max(10).describe("AGAIN code 0-10 (×0.5 … ×512)"),
  atime: u8.describe("ATIME register"),
  astep: z.number().int().min(0).max(65534).describe("ASTEP register"),
});
export type Spectral = z.infer<typeof SpectralSchema>;

/** Simulation ground truth: present only on emulated devices, never used by graders. */
export const SqalTruthSchema = z.object({
  tier: z.enum(QUALITY_TIERS),
  defects: z.array(z.string()).default([]),
});

export const SqalSampleSchema = EnvelopeSchema.extend({
  sample: z.string().min(1).max(64).describe("sample id, unique per device"),
  lot: LotCodeSchema.optional().describe("code_lot when the sample is part of a lot inspection"),
  idx: uint.optional().describe("sample index within the inspection, 0-based"),
  tof: TofFrameSchema,
  spec: SpectralSchema,
  temp: z.number().min(-40).max(125).optional().describe("station temperature, °C"),
  sim: SqalTruthSchema.optional().describe("SIMULATION GROUND TRUTH — emulated devices only"),
});
export type SqalSample = z.infer<typeof SqalSampleSchema>;
export type SqalSampleInput = z.input<typeof SqalSampleSchema>;

// ---------------------------------------------------------------- fridge controller

export const FridgeTruthSchema = z.object({
  fault: FaultIdSchema.nullable().describe("the fault the emulator is really simulating, or null"),
});

export const FridgeReadingSchema = EnvelopeSchema.extend({
  t: z.number().describe("cabinet temperature, °C (-999 = invalid probe)"),
  t_evap: z.number().optional().describe("evaporator temperature, °C"),
  p_lo: z.number().describe("low-side pressure (BP), bar"),
  p_hi: z.number().describe("high-side pressure (HP), bar"),
  i_comp: z.number().describe("compressor current, A"),
  v_sup: z.number().describe("supply voltage, V"),
  vib: z.number().describe("vibration, mm/s"),
  rh: z.number().describe("humidity, %"),
  flow: z.number().describe("air flow, m³/h"),
  door: z.boolean().describe("door open"),
  comp: z.boolean().describe("compressor running"),
  defrost: z.boolean().describe("defrost cycle active"),
  sim: FridgeTruthSchema.optional().describe("SIMULATION GROUND TRUTH — emulated devices only"),
});
export type FridgeReading = z.infer<typeof FridgeReadingSchema>;

// ---------------------------------------------------------------- feeding station

export const FeedingRecordSchema = EnvelopeSchema.extend({
  lot: LotCodeSchema.describe("code_lot"),
  site: SegmentSchema,
  feeder_id: uint,
  feeder: z.string().max(64).describe("feeder name"),
  genetics: z.enum(GENETICS),
  day: z.number().int().min(-1).max(60).describe("day of the feeding period, starts at -1"),
  days: z.number().int().min(1).max(60).describe("planned duration, days"),
  moment: z.enum(["morning", "evening"]),
  dose_th: z.number().nonnegative().describe("theoretical dose, g"),
  dose: z.number().nonnegative().describe("actual dose, g"),
  weight: z.number().nonnegative().describe("mean live weight, g"),
  alive: uint.describe("live ducks"),
  initial: uint.describe("ducks at the start of the lot"),
  mortality: z.number().min(0).max(100).describe("mortality, %"),
  pen_t: z.number().describe("pen temperature, °C"),
  pen_rh: z.number().min(0).max(100).describe("pen humidity, %"),
  ready: z.boolean().describe("ready for slaughter (last evening)"),
});
export type FeedingRecord = z.infer<typeof FeedingRecordSchema>;

// ---------------------------------------------------------------- common channels

export const CountersSchema = z.object({
  sent: uint,
  buffered: uint.describe("messages waiting in the offline FIFO"),
  dropped: uint.describe("messages dropped from the full FIFO (oldest first)"),
  reconnects: uint,
  i2c_err: uint,
});
export type Counters = z.infer<typeof CountersSchema>;

/** Retained `status`: birth (`online`), heartbeat (`online` + figures), will / clean shutdown (`offline`). */
export const StatusSchema = EnvelopeSchema.extend({
  state: z.enum(["online", "offline", "error"]),
  reason: z.string().max(128).optional().describe("why: boot reason, shutdown, sensor error, link lost"),
  uptime: uint.optional().describe("seconds since boot"),
  heap: uint.optional().describe("free heap, bytes"),
  rssi: z.number().int().min(-127).max(0).optional().describe("Wi-Fi RSSI, dBm"),
  cnt: CountersSchema.optional(),
});
export type Status = z.infer<typeof StatusSchema>;

export const SensorInfoSchema = z.object({
  name: z.string().max(32),
  addr: u8.describe("I2C address"),
  ok: z.boolean(),
  err: z.string().max(128).optional(),
});

export const MetaSchema = EnvelopeSchema.extend({
  kind: DeviceKindSchema,
  site: SegmentSchema,
  fw: z.string().max(32).describe("firmware version"),
  hw: z.string().max(32).optional().describe("hardware / chip model"),
  mac: z.string().regex(/^([0-9A-F]{2}:){5}[0-9A-F]{2}$/, "must be a MAC like 24:0A:C4:12:34:56"),
  sensors: z.array(SensorInfoSchema).max(16),
  cfg: z
    .record(z.string(), z.union([z.number(), z.string(), z.boolean()]))
    .optional()
    .describe("running configuration"),
  emulated: z.boolean().optional().describe("true for an emulated device (readings are simulated)"),
});
export type Meta = z.infer<typeof MetaSchema>;

export const EventSchema = EnvelopeSchema.extend({
  type: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,47}$/)
    .describe("fault_onset, fault_cleared, alarm, reboot, sensor_error, buffer_overflow, …"),
  sev: z.enum(["info", "warning", "critical"]),
  msg: z.string().max(256).optional(),
  fault: FaultIdSchema.optional(),
  data: z.record(z.string(), z.union([z.number(), z.string(), z.boolean(), z.null()])).optional(),
});
export type DeviceEvent = z.infer<typeof EventSchema>;

// ---------------------------------------------------------------- commands

const CommandBase = z.object({ id: z.string().min(1).max(64).describe("request id, echoed in the reply") });

export const CommandSchemas = {
  inspect: CommandBase.extend({
    lot: LotCodeSchema,
    n: z.number().int().min(1).max(100).default(5).describe("samples to measure"),
    profile: z.enum(INSPECTION_PROFILES).optional().describe("product profile from final weight and mortality"),
  }),
  fault: CommandBase.extend({
    action: z.enum(["inject", "clear"]),
    fault: FaultIdSchema.optional().describe("required for inject"),
    cycles: z.number().int().min(1).max(100_000).optional().describe("duration in readings (default 3-8 random)"),
  }).refine((c) => c.action === "clear" || c.fault !== undefined, {
    message: "fault is required for action inject",
    path: ["fault"],
  }),
  config: CommandBase.extend({
    interval_ms: z.number().int().min(100).max(3_600_000).optional(),
    fault_prob: z.number().min(0).max(1).optional(),
  }),
  reboot: CommandBase.extend({ delay_ms: z.number().int().min(0).max(60_000).default(0) }),
  status: CommandBase,
} as const;
export type CommandName = keyof typeof CommandSchemas;
export const COMMAND_NAMES = Object.keys(CommandSchemas) as CommandName[];
export type Command<N extends CommandName = CommandName> = z.infer<(typeof CommandSchemas)[N]>;

export const CommandReplySchema = EnvelopeSchema.extend({
  id: z.string().min(1).max(64),
  ok: z.boolean(),
  err: z.string().max(256).optional().describe("why the command failed"),
  data: z.record(z.string(), z.unknown()).optional(),
});
export type CommandReply = z.infer<typeof CommandReplySchema>;

/** Which telemetry schema a device kind publishes. */
export const TelemetrySchemas = {
  sqal: SqalSampleSchema,
  fridge: FridgeReadingSchema,
  gavage: FeedingRecordSchema,
} as const;
