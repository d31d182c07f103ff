export * from "./domain.ts";
export * from "./topics.ts";
export * from "./messages.ts";
export * from "./codec.ts";
export * from "./json.ts";
export * from "./nominal.ts";
