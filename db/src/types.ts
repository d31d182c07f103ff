/**
 * The storage seam shared by ingest, sqal and the broker's credential store. Two implementations behind
 * it: `pg` (a real PostgreSQL/TimescaleDB server, `DATABASE_URL`) and PGlite (embedded, in `DATA_DIR`).
 * Same SQL on both. SQL uses `$1…` placeholders.
 */
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

export interface Db extends Queryable {
  readonly kind: "postgres" | "pglite";
  /** true when the timescaledb extension is installed (hypertables, compression, continuous aggregates). */
  readonly timescale: boolean;
  /** Run `fn` in one transaction (BEGIN … COMMIT, ROLLBACK on throw) on one connection. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** `SELECT 1` — for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
