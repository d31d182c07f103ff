import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger } from "@esp-fleet/common/logger";
import { createTestDatabase, needsPostgres, testDatabaseUrl } from "@esp-fleet/common/testing";
import { openDb } from "@esp-fleet/db";
import { FileCredentialStore, type CredentialStore } from "../src/credentials.ts";
import { DbCredentialStore } from "../src/credential-db-store.ts";
import { hashPassword, verifyPassword } from "../src/password.ts";
import { createCredential, listCredentials, revokeCredential, rotateCredential } from "../src/provision.ts";
import { run as provisionCli } from "../src/provision-cli.ts";

describe("password hashing", () => {
  it("verifies the right password only, with salt and parameters in the hash", async () => {
    const h1 = await hashPassword("secret", { N: 1024, r: 8, p: 1 });
    const h2 = await hashPassword("secret", { N: 1024, r: 8, p: 1 });
    expect(h1).toMatch(/^scrypt\$N=1024,r=8,p=1\$/);
    expect(h1).not.toBe(h2); // per-credential salt
    expect(await verifyPassword("secret", h1)).toBe(true);
    expect(await verifyPassword("Secret", h1)).toBe(false);
    expect(await verifyPassword("secret", "garbage")).toBe(false);
  });
});

async function lifecycle(store: CredentialStore) {
  const { password, credential } = await createCredential(store, { username: "dev-7", role: "device" });
  expect(credential).not.toHaveProperty("hash");
  expect(await verifyPassword(password, (await store.get("dev-7"))!.hash)).toBe(true);
  await expect(createCredential(store, { username: "dev-7", role: "device" })).rejects.toMatchObject({ code: "CONFLICT" });
  await expect(createCredential(store, { username: "svc", role: "service" })).rejects.toMatchObject({ code: "BAD_INPUT" });
  await createCredential(store, { username: "svc", role: "service", scopes: ["ingest", "api"] });
  const rotated = await rotateCredential(store, "dev-7");
  expect(await verifyPassword(password, (await store.get("dev-7"))!.hash)).toBe(false);
  expect(await verifyPassword(rotated.password, (await store.get("dev-7"))!.hash)).toBe(true);
  await revokeCredential(store, "dev-7");
  const list = await listCredentials(store);
  expect(list.map((c) => [c.username, c.role, c.scopes, c.revokedAt !== null])).toEqual([
    ["dev-7", "device", [], true],
    ["svc", "service", ["ingest", "api"], false],
  ]);
}

describe("credential stores", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("file store: create, rotate, revoke, list; written 0600 without clear passwords", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cred-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = new FileCredentialStore(join(dir, "credentials.json"));
    await lifecycle(store);
    const text = await readFile(join(dir, "credentials.json"), "utf8");
    expect(text).toContain("scrypt$");
  });

  it("file store: concurrent writes all land (none lost, no temp-file race)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cred-conc-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = new FileCredentialStore(join(dir, "credentials.json"));
    await Promise.all(Array.from({ length: 12 }, (_, i) => createCredential(store, { username: `dev${i}`, role: "device" })));
    const fresh = new FileCredentialStore(join(dir, "credentials.json"));
    expect((await listCredentials(fresh)).map((c) => c.username).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `dev${i}`).sort(),
    );
  });

  it("provision fleet: credentials for the ids emulate generates, written to a file emulate reads", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cred-fleet-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const out = join(dir, "fleet.json");
    const code = await provisionCli(["fleet", "--devices", "4", "--kind", "sqal,fridge", "--site", "LL", "--out", out], {
      DATA_DIR: dir,
    });
    expect(code).toBe(0);
    const passwords = JSON.parse(await readFile(out, "utf8")) as Record<string, string>;
    expect(Object.keys(passwords).sort()).toEqual(["ESP32_LL_01", "ESP32_LL_02", "FRIDGE_LL_01", "FRIDGE_LL_02"]);
    const store = new FileCredentialStore(join(dir, "credentials.json"));
    for (const [dev, pw] of Object.entries(passwords)) expect(await verifyPassword(pw, (await store.get(dev))!.hash)).toBe(true);
  });

  it("PGlite store (the embedded database) behaves the same", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cred-pglite-"));
    const db = await openDb({ dataDir: dir, logger: silentLogger() });
    cleanups.push(async () => {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    });
    await lifecycle(new DbCredentialStore(db));
  });

  it.skipIf(!testDatabaseUrl)(`PostgreSQL store, and esp-fleet provision against DATABASE_URL${needsPostgres}`, async () => {
    const t = await createTestDatabase("broker");
    cleanups.push(() => t.drop());
    const db = await openDb({ databaseUrl: t.url, dataDir: tmpdir(), logger: silentLogger() });
    try {
      await lifecycle(new DbCredentialStore(db));
    } finally {
      await db.close();
    }
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (lines.push(s), true)) as typeof process.stdout.write;
    try {
      expect(await provisionCli(["--json", "create", "cli-dev"], { DATABASE_URL: t.url, DATA_DIR: tmpdir() })).toBe(0);
      expect(await provisionCli(["--json", "list"], { DATABASE_URL: t.url, DATA_DIR: tmpdir() })).toBe(0);
      expect(await provisionCli(["rotate", "nobody"], { DATABASE_URL: t.url, DATA_DIR: tmpdir() })).toBe(3);
    } finally {
      process.stdout.write = write;
    }
    expect(JSON.parse(lines[0]!).password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(JSON.parse(lines[1]!).map((c: { username: string }) => c.username)).toContain("cli-dev");
  });
});
