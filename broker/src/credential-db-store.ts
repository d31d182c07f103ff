import { migrate, type Db } from "@esp-fleet/db";
import { CredentialRecordSchema, type CredentialRecord, type CredentialStore } from "./credentials.ts";

interface Row {
  username: string;
  role: string;
  scopes: string[];
  hash: string;
  created_at: Date | string;
  rotated_at: Date | string | null;
  revoked_at: Date | string | null;
}

const iso = (v: Date | string | null): string | null => (v === null ? null : new Date(v).toISOString());

function toRecord(r: Row): CredentialRecord {
  return CredentialRecordSchema.parse({
    username: r.username,
    role: r.role,
    scopes: r.scopes ?? [],
    hash: r.hash,
    createdAt: iso(r.created_at),
    rotatedAt: iso(r.rotated_at),
    revokedAt: iso(r.revoked_at),
  });
}

/** Credentials in PostgreSQL (pg or PGlite behind the `Db` seam). */
export class DbCredentialStore implements CredentialStore {
  readonly kind = "db" as const;
  #ready: Promise<void> | undefined;
  constructor(
    readonly db: Db,
    readonly opts: { closeDb?: boolean } = {},
  ) {}

  /** The `credentials` table comes from the versioned migrations (db/migrations/100_credentials.sql). */
  #ensure(): Promise<void> {
    this.#ready ??= migrate(this.db).then(() => undefined);
    return this.#ready;
  }

  async get(username: string): Promise<CredentialRecord | undefined> {
    await this.#ensure();
    const { rows } = await this.db.query<Row>("SELECT * FROM credentials WHERE username = $1", [username]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async list(): Promise<CredentialRecord[]> {
    await this.#ensure();
    const { rows } = await this.db.query<Row>("SELECT * FROM credentials ORDER BY username");
    return rows.map(toRecord);
  }

  async put(r: CredentialRecord): Promise<void> {
    await this.#ensure();
    await this.db.query(
      `INSERT INTO credentials (username, role, scopes, hash, created_at, rotated_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, scopes = EXCLUDED.scopes, hash = EXCLUDED.hash,
         created_at = EXCLUDED.created_at, rotated_at = EXCLUDED.rotated_at, revoked_at = EXCLUDED.revoked_at`,
      [r.username, r.role, r.scopes, r.hash, r.createdAt, r.rotatedAt, r.revokedAt],
    );
  }

  async close(): Promise<void> {
    if (this.opts.closeDb) await this.db.close();
  }
}
