export * from "./thresholds.ts";
export * from "./tof.ts";
export * from "./spectral.ts";
export * from "./grade.ts";
export * from "./capability.ts";
