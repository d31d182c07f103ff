export * from "./logger.ts";
export * from "./errors.ts";
export * from "./config.ts";
export * from "./clock.ts";
export * from "./random.ts";
export * from "./discovery.ts";
export * from "./http.ts";
export * from "./cli.ts";
