export { createBroker, defaultCredentialStore, type BrokerService, type BrokerDeps, type BrokerPorts } from "./broker.ts";
export { brokerHttpPlugin } from "./http-plugin.ts";
export { BrokerConfigSchema, loadBrokerConfig, ANONYMOUS_POLICIES, type BrokerConfig, type AnonymousPolicy } from "./config.ts";
export {
  FileCredentialStore,
  CredentialRecordSchema,
  ROLES,
  SERVICE_SCOPES,
  type CredentialStore,
  type CredentialRecord,
  type Role,
  type ServiceScope,
} from "./credentials.ts";
export { DbCredentialStore } from "./credential-db-store.ts";
export { canPublish, canSubscribe, type Principal } from "./acl.ts";
export { hashPassword, verifyPassword, generatePassword } from "./password.ts";
export { createCredential, rotateCredential, revokeCredential, listCredentials, type CredentialSummary } from "./provision.ts";
export { installEmitterTrampoline } from "./overload.ts";
