/**
 * @esp-fleet/sqal — graders, lot monitor, fridge diagnosis and the lot API.
 */
export { createSqal, insertGrade, type SqalOptions, type SqalService, type SqalStats } from "./service.ts";
export { sqalHttpPlugin, type SqalHttpOptions } from "./http.ts";
export { SimulationManager, SimulationRequestSchema, type SimulationRequest, type SimulationView } from "./simulations.ts";
export { SqalConfigSchema, type SqalConfig } from "./config.ts";
export { listLots, getLot, lotSamples, LotsQuerySchema, LotParamsSchema } from "./queries.ts";
export { inspectionProfile, DEFAULT_PROFILE_RULE, type ProfileRule } from "./lots/profile.ts";
export * from "./grading/index.ts";
export * from "./diagnosis/index.ts";
export { diagnosisMarkdown } from "./diagnosis/report.ts";
