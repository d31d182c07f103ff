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
  /**
   * Run a script of several `;`-separated statements without parameters (migrations). Not for values
   * that came from outside.
   */
  exec(sql: string): Promise<void>;
  /**
   * `COPY <table> [(cols)] FROM STDIN` with `data` in PostgreSQL's text format (tab-separated, `\N` for
   * NULL, one row per line). Returns the number of rows copied. Available on both implementations.
   */
  copyFrom(sql: string, data: string): Promise<number>;
  /**
   * `COPY <table> [(cols)] FROM STDIN WITH (FORMAT binary)` with `data` a complete binary COPY stream
   * (see `copy-binary.ts`). Returns the number of rows copied. Available on both implementations.
   */
  copyFromBinary(sql: string, data: Uint8Array): Promise<number>;
}

export interface Db extends Queryable {
  readonly kind: "postgres" | "pglite";
  /** true when the timescaledb extension is installed (hypertables, compression, continuous aggregates). */
  readonly timescale: boolean;
  /** Run `fn` in one transaction (BEGIN … COMMIT, ROLLBACK on throw) on one connection. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Run `fn` on one dedicated connection without an implicit transaction (session-level advisory locks,
   * statements that refuse to run inside a transaction block).
   */
  withConnection<T>(fn: (conn: Queryable) => Promise<T>): Promise<T>;
  /** `SELECT 1` — for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
