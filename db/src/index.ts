export * from "./types.ts";
export * from "./open.ts";
export * from "./migrate.ts";
export * from "./copy-binary.ts";
