import { createHash } from "node:crypto";
import type { AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from "aedes";
import type { Logger } from "@esp-fleet/common/logger";
import { canPublish, canSubscribe, type Principal } from "./acl.ts";
import type { AnonymousPolicy } from "./config.ts";
import type { CredentialStore } from "./credentials.ts";
import { verifyPassword } from "./password.ts";
import type { BrokerMetrics } from "./metrics.ts";

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3. */
const IDENTIFIER_REJECTED = 2;
const SERVER_UNAVAILABLE = 3;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

function refusal(returnCode: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export interface AuthHooksOptions {
  store: CredentialStore;
  anonymous: AnonymousPolicy;
  metrics: BrokerMetrics;
  logger: Logger;
  /** true while the broker shuts down: wills are then not published (the clients did not fail). */
  isStopping: () => boolean;
}

/**
 * The Aedes hooks that enforce authentication and the topic ACL (acl.ts). The principal of each
 * connection lives in a WeakMap keyed by the Aedes client, so nothing is hung on Aedes objects.
 */
export function createAuthHooks(opts: AuthHooksOptions) {
  const { store, metrics, logger } = opts;
  const principals = new WeakMap<Client, Principal>();
  const emptyIdPersistent = new WeakSet<Client>();
  // Refused publishes are acknowledged as usual and then dropped ([MQTT-3.3.5-2] allows either that or
  // closing the connection; a misbehaving sensor should keep its session). `isDropped` lets the broker's
  // publish skip them.
  const dropped = new WeakSet<object>();
  // Successful verifications, keyed by a digest of (username, password, stored hash): a reconnect storm
  // costs one scrypt per credential, not one per connection. Rotation changes the hash and so the key.
  const verified = new Map<string, number>();
  const VERIFIED_MAX = 50_000;
  const VERIFIED_TTL_MS = 10 * 60_000;

  async function check(username: string, password: Buffer | undefined): Promise<Principal | AuthenticateError> {
    let record;
    try {
      record = await store.get(username);
    } catch (err) {
      logger.error({ err }, "credential store unavailable");
      return refusal(SERVER_UNAVAILABLE, "credential store unavailable");
    }
    if (!record || record.revokedAt || !password) return refusal(BAD_USERNAME_OR_PASSWORD, "bad user name or password");
    const key = createHash("sha256")
      .update(username)
      .update("\0")
      .update(password)
      .update("\0")
      .update(record.hash)
      .digest("base64");
    const seen = verified.get(key);
    if (seen === undefined || Date.now() - seen > VERIFIED_TTL_MS) {
      if (!(await verifyPassword(password.toString("utf8"), record.hash)))
        return refusal(BAD_USERNAME_OR_PASSWORD, "bad user name or password");
      if (verified.size >= VERIFIED_MAX) verified.clear();
      verified.set(key, Date.now());
    }
    return { kind: "user", username: record.username, role: record.role, scopes: record.scopes };
  }

  return {
    principalOf: (client: Client) => principals.get(client),
    isDropped: (packet: object) => dropped.has(packet),

    preConnect(client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void) {
      // [MQTT-3.1.3-8] an empty client id requires CleanSession=1; refused with CONNACK 2 in authenticate,
      // because an error here would close the connection without any CONNACK.
      if (packet.clientId === "" && !packet.clean) emptyIdPersistent.add(client);
      callback(null, true);
    },

    authenticate(
      client: Client,
      username: Readonly<string | undefined>,
      password: Readonly<Buffer | undefined>,
      done: (error: AuthenticateError | null, success: boolean | null) => void,
    ) {
      const refuse = (e: AuthenticateError, reason: string) => {
        metrics.authRefused.inc({ reason });
        logger.info({ clientId: client.id, username, reason }, "connection refused");
        done(e, false);
      };
      if (emptyIdPersistent.has(client)) {
        refuse(refusal(IDENTIFIER_REJECTED, "empty client id needs CleanSession=1"), "identifier_rejected");
        return;
      }
      if (username === undefined || username === "") {
        if (opts.anonymous === "off") {
          refuse(refusal(NOT_AUTHORIZED, "anonymous access is disabled"), "anonymous");
          return;
        }
        principals.set(client, { kind: "anonymous", policy: opts.anonymous });
        done(null, true);
        return;
      }
      check(username, password).then(
        (result) => {
          if (result instanceof Error) {
            refuse(result, result.returnCode === SERVER_UNAVAILABLE ? "unavailable" : "bad_credentials");
            return;
          }
          // A device's session is its own: its client id must be its device id (or `{id}-…` for a
          // second, clean-session tool such as `esp-fleet check`), so no device can take over, or be
          // disconnected by, another device's session ([MQTT-3.1.4-2] takeover).
          if (
            result.kind === "user" &&
            result.role === "device" &&
            client.id !== result.username &&
            !client.id.startsWith(`${result.username}-`)
          ) {
            refuse(
              refusal(IDENTIFIER_REJECTED, `a device's client id must be its device id ${result.username}`),
              "identifier_rejected",
            );
            return;
          }
          principals.set(client, result);
          done(null, true);
        },
        (err: unknown) => {
          logger.error({ err }, "authentication failed unexpectedly");
          refuse(refusal(SERVER_UNAVAILABLE, "authentication failed"), "unavailable");
        },
      );
    },

    authorizePublish(client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void) {
      if (client === null) {
        callback(null); // the broker's own publishes ($SYS, API)
        return;
      }
      const will = (client as unknown as { will: unknown }).will;
      const isWill = will !== null && will !== undefined && will === packet;
      if (isWill && opts.isStopping()) {
        callback(new Error("broker shutting down: will not published"));
        return;
      }
      const principal = principals.get(client);
      if (principal && canPublish(principal, packet.topic)) {
        callback(null);
        return;
      }
      metrics.publishRefused.inc({ kind: isWill ? "will" : "publish" });
      // the client id and topic, never the payload
      logger.warn({ clientId: client.id, topic: packet.topic, will: isWill }, "publish refused by ACL");
      if (isWill) {
        callback(new Error("will not authorized")); // Aedes then skips the will
        return;
      }
      dropped.add(packet);
      callback(null);
    },

    authorizeSubscribe(
      client: Client,
      sub: Subscription,
      callback: (error: Error | null, subscription?: Subscription | null) => void,
    ) {
      const principal = principals.get(client);
      if (principal && canSubscribe(principal, sub.topic)) {
        callback(null, sub);
        return;
      }
      metrics.subscribeRefused.inc();
      logger.warn({ clientId: client.id, filter: sub.topic }, "subscription refused by ACL");
      callback(null, null); // SUBACK 0x80 for this filter, the connection stays
    },
  };
}
