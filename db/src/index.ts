export * from "./types.ts";
export * from "./open.ts";
export * from "./migrate.ts";
