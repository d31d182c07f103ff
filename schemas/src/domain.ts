/**
 * Domain vocabulary that crosses the wire (DESIGN §3, shared/domain/README.md). Ids are ASCII so C
 * firmware and any CBOR library can produce them; labels keep the predecessors' French names.
 */
export const FAULTS = [
  { id: "surchauffe_compresseur", label: "compressor overheating" },
  { id: "fuite_fluide", label: "refrigerant leak" },
  { id: "givrage_evaporateur", label: "evaporator icing" },
  { id: "panne_electrique", label: "power failure" },
  { id: "obstruction_conduit", label: "duct obstruction" },
  { id: "defaillance_ventilateur", label: "fan failure" },
  { id: "capteur_defectueux", label: "faulty sensor" },
  { id: "pression_anormale_HP", label: "abnormal high pressure" },
  { id: "pression_anormale_BP", label: "abnormal low pressure" },
  { id: "defaut_degivrage", label: "defrost failure" },
  { id: "defaillance_thermostat", label: "thermostat failure" },
  { id: "defaillance_compresseur", label: "compressor failure" },
] as const;
export const FAULT_IDS = FAULTS.map((f) => f.id) as unknown as readonly [FaultId, ...FaultId[]];
export type FaultId = (typeof FAULTS)[number]["id"];

/** Temperature sentinel a faulty probe reports. */
export const INVALID_TEMPERATURE = -999.0;

export const QUALITY_TIERS = ["premium", "good", "acceptable", "low", "defective"] as const;
export type QualityTier = (typeof QUALITY_TIERS)[number];

export const GRADES = ["A+", "A", "B", "C", "REJECT"] as const;
export type Grade = (typeof GRADES)[number];

export const GENETICS = ["mulard", "barbarie", "pekin"] as const;
export type Genetics = (typeof GENETICS)[number];

export const INSPECTION_PROFILES = ["premium", "standard", "low"] as const;
export type InspectionProfile = (typeof INSPECTION_PROFILES)[number];

export const LOT_STATUSES = ["feeding", "pending", "inspecting", "inspected", "approved", "rejected", "error"] as const;
export type LotStatus = (typeof LOT_STATUSES)[number];

/** AS7341 channel order used by every array of spectral counts. */
export const AS7341_CHANNELS = ["f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "clear", "nir"] as const;
export type As7341Channel = (typeof AS7341_CHANNELS)[number];

/** VL53L8CH target status meaning "valid range". */
export const TOF_STATUS_VALID = 5;
export const TOF_ZONES = 64;

/** `code_lot` = `{SITE}{YYMM}{NNN}`, e.g. LL2512001. */
export const LOT_CODE_RE = /^[A-Z]{2,4}\d{4}\d{3}$/;
