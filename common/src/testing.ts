/**
 * Test helpers shared by every package's tests: a real Aedes broker on an ephemeral port, a throw-away
 * PostgreSQL database on the server named by TEST_DATABASE_URL, polling, a free port, and for the tests that
 * measure what survives the young generation's collections, V8's `gc()` and the old generation's size.
 */
import { createServer, type AddressInfo, type Server } from "node:net";
import { randomBytes } from "node:crypto";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { Aedes } from "aedes";

export interface TestBroker {
  aedes: Aedes;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** A plain, anonymous, in-memory Aedes on 127.0.0.1:0. For protocol-agnostic tests of other packages. */
export async function startTestBroker(): Promise<TestBroker> {
  const aedes = await Aedes.createBroker({ drainTimeout: 2000 });
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    aedes,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes (then throw with `what`). */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The admin URL of a real PostgreSQL for tests, or undefined (then real-PG tests are skipped — never in CI). */
export const testDatabaseUrl: string | undefined = process.env.TEST_DATABASE_URL || undefined;

/** Why real-server tests are skipped, for `describe.skipIf(...)` titles. */
export const needsPostgres = testDatabaseUrl ? "" : " (skipped: set TEST_DATABASE_URL to a PostgreSQL admin URL)";

/** Create a uniquely named database on the TEST_DATABASE_URL server; `drop()` removes it. */
export async function createTestDatabase(prefix = "t"): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  if (!testDatabaseUrl) throw new Error("TEST_DATABASE_URL is not set");
  const { default: pg } = await import("pg");
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: testDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: testDatabaseUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A free TCP port on 127.0.0.1 (for child processes that must be told a port up front). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Bytes in V8's old generation now (old space and large objects): what promotion grows, for the tests that
 * measure what survives the young generation's collections. */
export function oldGenerationBytes(): number {
  let used = 0;
  for (const s of v8.getHeapSpaceStatistics())
    if (s.space_name === "old_space" || s.space_name === "large_object_space") used += s.space_used_size;
  return used;
}

/** V8's `gc()` — a full collection, or a young-generation one with `{ type: "minor" }` — exposed at run time. */
export function exposedGc(): (o?: { type: "minor" }) => void {
  v8.setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as (o?: { type: "minor" }) => void;
}
