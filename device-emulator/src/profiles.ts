/**
 * Every number the sensor and process models use, as data (shared/domain/README.md). Models read these
 * profiles; nothing domain-specific is hard-coded in the model code. A profile may be replaced wholesale
 * (e.g. a test with a fridge that never opens its door) by passing another object of the same type.
 */
import type { FaultId, Genetics, InspectionProfile, QualityTier } from "@esp-fleet/schemas";
import { AS7341_REFERENCE_COUNTS } from "@esp-fleet/schemas";

export type Range = readonly [number, number];

// ------------------------------------------------------------------------------------------- fridge

export type FridgeField = "t" | "p_lo" | "p_hi" | "i_comp" | "v_sup" | "vib" | "rh" | "flow";

export interface FaultSignature {
  /** Fields forced into these ranges (uniform) while the fault is active. */
  fields: Partial<Record<FridgeField, Range>>;
  /** Readings over which the signature fades in from the physical value (0 = immediate, e.g. a power cut). */
  onsetReadings: number;
  /** Fixed values (e.g. the invalid-probe sentinel) applied without ramp. */
  fixed?: Partial<Record<FridgeField, number>>;
  /** Physical consequences the state flags show. */
  compressorRunning?: boolean;
}

export interface FridgeProfile {
  /** Normal reading statistics (mean, sd) — the target distribution of healthy readings. */
  normal: Record<FridgeField, { mean: number; sd: number }>;
  thermal: {
    setpoint: number; // °C, thermostat centre
    hysteresis: number; // ± °C around the set point
    ambient: number; // °C outside the cabinet
    /** Cabinet warms towards ambient with this time constant (compressor off), s. */
    tauLeakS: number;
    /** Cooling rate with the compressor on, °C/s. */
    coolRate: number;
    /** Door-opening rate per simulated hour, and duration range (s) and extra warming while open (°C/s). */
    doorPerHour: number;
    doorDurationS: Range;
    doorWarmRate: number;
    /** Defrost every `defrostEveryS` for `defrostDurationS`, simulated seconds. */
    defrostEveryS: number;
    defrostDurationS: number;
    evapOffset: number; // evaporator below cabinet while cooling, °C
  };
  /** Fault process: duration of a random or injected fault, in readings. */
  faultReadings: Range;
  faults: Record<FaultId, FaultSignature>;
  /** Predecessor validation bounds: outside → a warning event, never a rejection. */
  bounds: Record<FridgeField, Range>;
  /**
   * Alarm debouncing (models/alarms.ts): an alarm is raised on the first reading outside `bounds` and
   * cleared after `clearReadings` (1 … 15) consecutive readings inside the bounds narrowed on each side by
   * `clearMargin` × the bounds' span. Not from the predecessor (it raised and cleared on every crossing).
   */
  alarm: { clearMargin: number; clearReadings: number };
}

export const FRIDGE_PROFILE: FridgeProfile = {
  normal: {
    t: { mean: 5.0, sd: 2.0 },
    p_lo: { mean: 2.5, sd: 0.3 },
    p_hi: { mean: 12.0, sd: 1.0 },
    i_comp: { mean: 15.0, sd: 2.0 },
    v_sup: { mean: 380, sd: 10 },
    vib: { mean: 0.5, sd: 0.1 },
    rh: { mean: 65, sd: 5 },
    flow: { mean: 100, sd: 10 },
  },
  thermal: {
    setpoint: 5.0,
    hysteresis: 2.0,
    ambient: 22,
    tauLeakS: 1800,
    coolRate: 0.013,
    doorPerHour: 2,
    doorDurationS: [10, 60],
    doorWarmRate: 0.02,
    defrostEveryS: 6 * 3600,
    defrostDurationS: 20 * 60,
    evapOffset: 8,
  },
  faultReadings: [3, 8],
  faults: {
    surchauffe_compresseur: { fields: { t: [20, 40], i_comp: [25, 35], vib: [3, 8] }, onsetReadings: 2 },
    fuite_fluide: { fields: { p_lo: [0.3, 1.0], t: [15, 25], i_comp: [8, 12] }, onsetReadings: 2 },
    givrage_evaporateur: { fields: { t: [-10, 0], rh: [85, 95], flow: [30, 60] }, onsetReadings: 2 },
    panne_electrique: { fields: { v_sup: [100, 200] }, fixed: { i_comp: 0 }, onsetReadings: 0, compressorRunning: false },
    obstruction_conduit: { fields: { flow: [10, 30], p_lo: [1.0, 2.0] }, onsetReadings: 1 },
    defaillance_ventilateur: { fields: { flow: [5, 20], rh: [80, 95] }, onsetReadings: 1 },
    capteur_defectueux: { fields: { i_comp: [10, 20] }, fixed: { t: -999.0 }, onsetReadings: 0 },
    pression_anormale_HP: { fields: { p_hi: [25, 35], i_comp: [20, 28] }, onsetReadings: 1 },
    pression_anormale_BP: { fields: { p_lo: [4.0, 6.0], t: [10, 18] }, onsetReadings: 1 },
    defaut_degivrage: { fields: { t: [-15, -5], flow: [20, 50] }, onsetReadings: 2 },
    defaillance_thermostat: { fields: { t: [25, 35], i_comp: [18, 25] }, onsetReadings: 2 },
    defaillance_compresseur: {
      fields: { vib: [2, 6] },
      fixed: { i_comp: 0 },
      onsetReadings: 0,
      compressorRunning: true,
    },
  },
  bounds: {
    t: [-50, 50],
    p_lo: [0, 20],
    p_hi: [0, 30],
    i_comp: [0, 50],
    v_sup: [0, 600],
    vib: [0, 100],
    rh: [0, 100],
    flow: [0, 500],
  },
  // 5 % of the span: 1.5 bar under the 30 bar high-pressure bound, 5 °C inside −50 … 50 °C; 5 readings.
  alarm: { clearMargin: 0.05, clearReadings: 5 },
};

// ------------------------------------------------------------------------------------------- SQAL

export interface TierModel {
  weight: number; // share of the population
  freshness: number;
  fat: number;
  oxidation: number;
  uniformity: number;
  /** Product lobe height, mm (mean, sd). */
  height: { mean: number; sd: number };
  /** Surface texture noise, mm (sd). */
  textureMm: number;
  /** Expected number of defects per sample. */
  defectRate: number;
  /** Chance a zone reports an invalid target status. */
  invalidZoneRate: number;
}

export type DefectKind = "foreign_body" | "deformation" | "edge_damage" | "optical_inconsistency";

export interface SqalProfile {
  tiers: Record<QualityTier, TierModel>;
  /** Tier weights per inspection profile (premium / standard / low lots), in QUALITY_TIERS order. */
  inspectionMix: Record<InspectionProfile, Record<QualityTier, number>>;
  tof: {
    sensorHeightMm: number;
    tray: { lengthMm: number; widthMm: number; depthMm: number };
    product: { lengthMm: number; widthMm: number };
    rotationDeg: { mean: number; spread: number };
    centreJitterMm: number;
    reflectance: { product: Range; tray: number };
    ambientKcps: Range;
    defects: Record<DefectKind, { distMm?: Range; radiusZones: Range; reflDelta?: Range }>;
  };
  spectral: {
    /** Reference counts at gain ×4 and 100 ms integration for optimal product, AS7341_CHANNELS order. */
    reference: Record<"f1" | "f2" | "f3" | "f4" | "f5" | "f6" | "f7" | "f8" | "clear" | "nir", number>;
    gain: number; // AGAIN code (3 = ×4)
    atime: number;
    astep: number;
    /** Ageing raises every channel: × (1 + aging·(1 − freshness)). */
    aging: number;
    /** Oxidation raises the blue channels F1/F2: × (1 + oxidation·(ox − 0.05)). */
    oxidationBlue: number;
    /** Fat quality scales F6/F7: × (1 − fat·(1 − fatQuality)). */
    fat: number;
    /** NIR falls with age: × (1 − nirAging·(1 − freshness)). */
    nirAging: number;
    /** +0.1 %/°C around 25 °C. */
    tempCoeff: number;
    stationTempC: Range;
  };
}

export const SQAL_PROFILE: SqalProfile = {
  tiers: {
    premium: {
      weight: 0.15,
      freshness: 0.95,
      fat: 0.95,
      oxidation: 0.05,
      uniformity: 0.92,
      height: { mean: 80, sd: 2.5 },
      textureMm: 0.4,
      defectRate: 0.03,
      invalidZoneRate: 0,
    },
    good: {
      weight: 0.4,
      freshness: 0.85,
      fat: 0.85,
      oxidation: 0.15,
      uniformity: 0.82,
      height: { mean: 74, sd: 3 },
      textureMm: 0.8,
      defectRate: 0.12,
      invalidZoneRate: 0.002,
    },
    acceptable: {
      weight: 0.3,
      freshness: 0.7,
      fat: 0.7,
      oxidation: 0.3,
      uniformity: 0.75,
      height: { mean: 64, sd: 4 },
      textureMm: 1.5,
      defectRate: 0.3,
      invalidZoneRate: 0.005,
    },
    low: {
      weight: 0.1,
      freshness: 0.55,
      fat: 0.55,
      oxidation: 0.45,
      uniformity: 0.65,
      height: { mean: 52, sd: 5 },
      textureMm: 2.5,
      defectRate: 0.7,
      invalidZoneRate: 0.01,
    },
    defective: {
      weight: 0.05,
      freshness: 0.35,
      fat: 0.35,
      oxidation: 0.65,
      uniformity: 0.5,
      height: { mean: 42, sd: 5 },
      textureMm: 4,
      defectRate: 1.5,
      invalidZoneRate: 0.02,
    },
  },
  inspectionMix: {
    premium: { premium: 0.45, good: 0.45, acceptable: 0.1, low: 0, defective: 0 },
    standard: { premium: 0.15, good: 0.4, acceptable: 0.3, low: 0.1, defective: 0.05 },
    low: { premium: 0, good: 0.1, acceptable: 0.35, low: 0.35, defective: 0.2 },
  },
  tof: {
    sensorHeightMm: 100,
    tray: { lengthMm: 300, widthMm: 180, depthMm: 5 },
    product: { lengthMm: 200, widthMm: 100 },
    rotationDeg: { mean: 45, spread: 22.5 },
    centreJitterMm: 8,
    reflectance: { product: [35, 55], tray: 20 },
    ambientKcps: [4, 12],
    defects: {
      foreign_body: { distMm: [-25, -10], radiusZones: [1, 2] },
      deformation: { distMm: [5, 15], radiusZones: [1, 3] },
      edge_damage: { distMm: [8, 20], radiusZones: [1, 1] },
      optical_inconsistency: { reflDelta: [-30, -15], radiusZones: [1, 2] },
    },
  },
  spectral: {
    reference: { ...AS7341_REFERENCE_COUNTS },
    gain: 3,
    atime: 35,
    astep: 999,
    aging: 0.3,
    // How much oxidation lifts the blue channels. 0.5 makes each quality tier grade as itself under the
    // domain's spectral bands (premium → A+, good → A, acceptable → B, low → C, defective → REJECT;
    // `npx tsx sqal/scripts/tier-grades.ts`); 1.2 pushed every `low` sample out of band to REJECT.
    oxidationBlue: 0.5,
    fat: 0.4,
    nirAging: 0.4,
    tempCoeff: 0.001,
    stationTempC: [22, 27],
  },
};

// ------------------------------------------------------------------------------------------- feeding

export interface GeneticsModel {
  startWeight: Range;
  gainPerFeeding: Range;
  /** Inspection profile thresholds on final mean weight, g. */
  optimalWeight: number;
  minimumWeight: number;
  /** Share of new lots with this genetics. */
  weight: number;
}

export interface FeedingProfile {
  feeders: readonly { id: number; name: string; site: string }[];
  genetics: Record<Genetics, GeneticsModel>;
  ducks: Range;
  durationDays: Range;
  /** Simulated hour (UTC) of the morning and evening feedings. */
  feedingHours: readonly [number, number];
  dose: { morning: Range; evening: Range; variation: Range };
  gainVariation: Range;
  mortality: { base: number; perDay: number };
  pen: { temperature: Range; humidity: Range };
  /** Mortality limits for the premium / standard inspection profile, %. */
  profileMortality: { premium: number; standard: number };
}

export const FEEDING_PROFILE: FeedingProfile = {
  feeders: [
    { id: 1, name: "Jean Martin", site: "LL" },
    { id: 2, name: "Sophie Dubois", site: "LS" },
    { id: 3, name: "Pierre Leroy", site: "MT" },
    { id: 4, name: "Marie Petit", site: "LL" },
    { id: 5, name: "Luc Blanc", site: "LS" },
  ],
  genetics: {
    mulard: { startWeight: [4400, 4600], gainPerFeeding: [60, 90], optimalWeight: 6500, minimumWeight: 5800, weight: 0.7 },
    barbarie: { startWeight: [3800, 4000], gainPerFeeding: [50, 70], optimalWeight: 6000, minimumWeight: 5500, weight: 0.15 },
    pekin: { startWeight: [4000, 4200], gainPerFeeding: [55, 75], optimalWeight: 6200, minimumWeight: 5600, weight: 0.15 },
  },
  ducks: [45, 55],
  durationDays: [11, 14],
  feedingHours: [6, 18],
  dose: { morning: [200, 460], evening: [210, 490], variation: [0.95, 1.05] },
  gainVariation: [0.9, 1.1],
  mortality: { base: 0.0005, perDay: 0.0001 },
  pen: { temperature: [19, 23], humidity: [55, 75] },
  profileMortality: { premium: 3, standard: 5 },
};

// ------------------------------------------------------------------------------------------- hardware

export interface SensorSpec {
  name: string;
  addr: number;
}

export const HARDWARE = {
  sqal: {
    hw: "ESP32-S3",
    sensors: [
      { name: "VL53L8CH", addr: 0x29 },
      { name: "AS7341", addr: 0x39 },
    ],
  },
  fridge: {
    hw: "ESP32",
    sensors: [
      { name: "ADS1115", addr: 0x48 },
      { name: "SHT31", addr: 0x44 },
    ],
  },
  gavage: {
    hw: "ESP32-C3",
    sensors: [
      { name: "HX711", addr: 0x00 },
      { name: "SHT31", addr: 0x44 },
    ],
  },
} as const satisfies Record<string, { hw: string; sensors: readonly SensorSpec[] }>;

export const FIRMWARE_VERSION = "1.4.2-emu";
/** Espressif OUI for emulated MAC addresses. */
export const MAC_OUI = "24:0A:C4";
