export { createIngest, type IngestOptions, type IngestService, type IngestStats } from "./service.ts";
export { ingestHttpPlugin, type IngestHttpOptions } from "./http.ts";
export { IngestConfigSchema, type IngestConfig } from "./config.ts";
export { parsePartition, subscriptionFilters, ownsDevice, deviceHash, INGEST_CHANNELS, type Partition } from "./partition.ts";
export { classify, TABLE_COLUMNS, CHANNEL_TABLES, type ChannelTable, type Outcome } from "./rows.ts";
export { writeBatch, isTransientDbError, type BatchItem, type BatchResult } from "./store.ts";
