import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { ConfigError } from "@esp-fleet/common/errors";
import { SEGMENT_RE } from "@esp-fleet/schemas/topics";

/**
 * Who may connect, and as what. Devices log in with their device id as username; services with a
 * service account that carries named scopes; viewers read everything and publish nothing.
 */
export const ROLES = ["device", "service", "viewer"] as const;
export type Role = (typeof ROLES)[number];
export const SERVICE_SCOPES = ["ingest", "sqal", "bridge", "api"] as const;
export type ServiceScope = (typeof SERVICE_SCOPES)[number];

export const CredentialRecordSchema = z.object({
  username: z.string().regex(SEGMENT_RE, "must match [A-Za-z0-9_-]+").max(64),
  role: z.enum(ROLES),
  scopes: z.array(z.enum(SERVICE_SCOPES)).default([]),
  /** scrypt hash in the encoded form of password.ts (salt and parameters included) */
  hash: z.string(),
  createdAt: z.string(),
  rotatedAt: z.string().nullable().default(null),
  revokedAt: z.string().nullable().default(null),
});
export type CredentialRecord = z.infer<typeof CredentialRecordSchema>;

/** Where credentials live: a JSON file (default) or the database. Both implement the same small interface. */
export interface CredentialStore {
  readonly kind: "file" | "db";
  get(username: string): Promise<CredentialRecord | undefined>;
  list(): Promise<CredentialRecord[]>;
  /** insert or replace the record with this username */
  put(record: CredentialRecord): Promise<void>;
  close(): Promise<void>;
}

const FileSchema = z.object({ version: z.literal(1), credentials: z.array(CredentialRecordSchema) });

/**
 * Credentials in a JSON file (`${DATA_DIR}/credentials.json`), written atomically (temp file + rename,
 * mode 0600). The file is re-read when it changed on disk, so `esp-fleet provision` takes effect on a
 * running broker without a restart.
 */
export class FileCredentialStore implements CredentialStore {
  readonly kind = "file" as const;
  #cache: Map<string, CredentialRecord> | undefined;
  #mtimeMs = -1;
  constructor(readonly path: string) {}

  async #load(): Promise<Map<string, CredentialRecord>> {
    const { stat } = await import("node:fs/promises");
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(this.path)).mtimeMs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        this.#cache = new Map();
        this.#mtimeMs = -1;
        return this.#cache;
      }
      throw e;
    }
    if (this.#cache && mtimeMs === this.#mtimeMs) return this.#cache;
    const text = await readFile(this.path, "utf8");
    let parsed: z.infer<typeof FileSchema>;
    try {
      parsed = FileSchema.parse(JSON.parse(text));
    } catch (e) {
      throw new ConfigError(
        `credentials file ${this.path} is not valid: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`,
      );
    }
    this.#cache = new Map(parsed.credentials.map((c) => [c.username, c]));
    this.#mtimeMs = mtimeMs;
    return this.#cache;
  }

  async get(username: string): Promise<CredentialRecord | undefined> {
    return (await this.#load()).get(username);
  }

  async list(): Promise<CredentialRecord[]> {
    return [...(await this.#load()).values()].sort((a, b) => a.username.localeCompare(b.username));
  }

  /** Writes are serialised: each one reads the latest file, so concurrent puts neither race nor lose updates. */
  #writes: Promise<void> = Promise.resolve();

  put(record: CredentialRecord): Promise<void> {
    const write = this.#writes.then(() => this.#put(record));
    this.#writes = write.catch(() => undefined);
    return write;
  }

  async #put(record: CredentialRecord): Promise<void> {
    const all = new Map(await this.#load());
    all.set(record.username, CredentialRecordSchema.parse(record));
    const body = JSON.stringify({ version: 1, credentials: [...all.values()] }, null, 2);
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, `${body}\n`, { mode: 0o600 });
    await rename(tmp, this.path);
    this.#cache = undefined;
  }

  async close(): Promise<void> {}
}
