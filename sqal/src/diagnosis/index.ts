export * from "./profile.ts";
export * from "./classify.ts";
export * from "./tracker.ts";
export * from "./score.ts";
