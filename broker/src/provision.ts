import { BadInputError, FleetError, NotFoundError } from "@esp-fleet/common/errors";
import { SEGMENT_RE } from "@esp-fleet/schemas/topics";
import { SERVICE_SCOPES, type CredentialRecord, type CredentialStore, type Role, type ServiceScope } from "./credentials.ts";
import { generatePassword, hashPassword } from "./password.ts";

/** A credential as listed: never the hash. */
export type CredentialSummary = Omit<CredentialRecord, "hash">;

const summary = ({ hash: _hash, ...rest }: CredentialRecord): CredentialSummary => rest;

export async function createCredential(
  store: CredentialStore,
  input: { username: string; role: Role; scopes?: ServiceScope[]; password?: string },
  now = new Date(),
): Promise<{ credential: CredentialSummary; password: string }> {
  if (!SEGMENT_RE.test(input.username) || input.username.length > 64)
    throw new BadInputError(`username ${JSON.stringify(input.username)} must match [A-Za-z0-9_-]+ (max 64)`);
  const scopes = input.scopes ?? [];
  if (input.role === "service" && scopes.length === 0)
    throw new BadInputError(`a service account needs at least one scope (${SERVICE_SCOPES.join(", ")})`);
  if (input.role !== "service" && scopes.length > 0) throw new BadInputError("only service accounts have scopes");
  const existing = await store.get(input.username);
  if (existing && !existing.revokedAt)
    throw new FleetError("CONFLICT", `credential ${JSON.stringify(input.username)} exists; use rotate to change its password`);
  const password = input.password ?? generatePassword();
  const record: CredentialRecord = {
    username: input.username,
    role: input.role,
    scopes,
    hash: await hashPassword(password),
    createdAt: now.toISOString(),
    rotatedAt: null,
    revokedAt: null,
  };
  await store.put(record);
  return { credential: summary(record), password };
}

export async function rotateCredential(
  store: CredentialStore,
  username: string,
  now = new Date(),
): Promise<{ credential: CredentialSummary; password: string }> {
  const existing = await store.get(username);
  if (!existing) throw new NotFoundError(`no credential ${JSON.stringify(username)}`);
  const password = generatePassword();
  const record: CredentialRecord = {
    ...existing,
    hash: await hashPassword(password),
    rotatedAt: now.toISOString(),
    revokedAt: null,
  };
  await store.put(record);
  return { credential: summary(record), password };
}

export async function revokeCredential(store: CredentialStore, username: string, now = new Date()): Promise<CredentialSummary> {
  const existing = await store.get(username);
  if (!existing) throw new NotFoundError(`no credential ${JSON.stringify(username)}`);
  const record: CredentialRecord = { ...existing, revokedAt: existing.revokedAt ?? now.toISOString() };
  await store.put(record);
  return summary(record);
}

export async function listCredentials(store: CredentialStore): Promise<CredentialSummary[]> {
  return (await store.list()).map(summary);
}
