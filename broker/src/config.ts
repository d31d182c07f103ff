import { z } from "zod";
import { env, loadConfig } from "@esp-fleet/common/config";

/** Who may connect without credentials (DESIGN §6): nobody, read-only viewers, or everyone (development only). */
export const ANONYMOUS_POLICIES = ["off", "read", "full"] as const;
export type AnonymousPolicy = (typeof ANONYMOUS_POLICIES)[number];

/** The broker's environment. Every variable is described with its default; `esp-fleet broker --help` and the README list them. */
export const BrokerConfigSchema = z.object({
  MQTT_HOST: env.string("0.0.0.0", "interface the MQTT, WebSocket and TLS listeners bind to"),
  MQTT_PORT: env.port(1883, "MQTT over TCP listener port (0 = any free port)"),
  MQTT_ACCEPT_HANDLES: env.int(
    64,
    1,
    256,
    "listening descriptors of the MQTT TCP port: a busy broker accepts this many connections per event-loop iteration (Node accepts one per descriptor), so a fleet reconnecting at once gets in; 1 = Node's single one",
  ),
  MQTT_WS_PORT: env.port(9001, "MQTT over WebSocket listener port (0 = any free port)"),
  MQTT_WS_ENABLED: env.bool(true, "serve MQTT over WebSocket on MQTT_WS_PORT"),
  MQTT_TLS_PORT: env.port(8883, "MQTT over TLS listener port, used only when MQTT_TLS_CERT and MQTT_TLS_KEY are set"),
  MQTT_TLS_CERT: env.optionalString("path of the PEM certificate (chain) for the TLS listener; unset = no TLS listener"),
  MQTT_TLS_KEY: env.optionalString("path of the PEM private key for the TLS listener"),
  HTTP_PORT: env.port(8081, "health, readiness and metrics HTTP port (standalone `esp-fleet broker`)"),
  MQTT_ANONYMOUS: env.enumOf(
    ANONYMOUS_POLICIES,
    "off",
    "clients without a username: off = refused (CONNACK 5), read = read-only viewer, full = may do anything (development and conformance tests only)",
  ),
  DATA_DIR: env.string("./data", "directory for the credentials file (and the embedded database of the all-in-one)"),
  MQTT_CREDENTIALS_FILE: env.optionalString(
    "credentials file; default ${DATA_DIR}/credentials.json (used when no database is configured)",
  ),
  DATABASE_URL: env.url("PostgreSQL URL; when set, credentials live in the database's `credentials` table instead of the file"),
  REDIS_URL: env.url(
    "Redis URL (redis://host:6379); when set, sessions, queued QoS 1 messages and retained messages live in Redis and brokers sharing it form one cluster",
  ),
  MQTT_MAX_PACKET_SIZE: env.int(
    262_144,
    64,
    268_435_455,
    "largest MQTT packet accepted, in bytes; a larger one closes the connection",
  ),
  MQTT_CONNECT_TIMEOUT_MS: env.int(10_000, 100, 600_000, "a connection that sends no CONNECT within this time is closed"),
  MQTT_DRAIN_TIMEOUT_MS: env.int(
    5_000,
    100,
    600_000,
    "a subscriber whose socket stays full this long is disconnected, so it cannot stall delivery to others",
  ),
  MQTT_MAX_QUEUED_MESSAGES: env.int(
    1000,
    0,
    10_000_000,
    "QoS 1/2 messages kept per offline persistent session; beyond it the newest are dropped and counted (0 = unlimited)",
  ),
  MQTT_MAX_QUEUED_MESSAGES_SERVICE: env.int(
    200_000,
    0,
    10_000_000,
    "the same for a session last connected with a service account (ingest, sqal): ~20 s of a 10,000-device fleet's readings (0 = unlimited)",
  ),
  // 1,000, as every end-to-end benchmark ran it (docs/broker.md, "Deliveries and 'drain'"); Aedes's own is 100
  MQTT_CONCURRENCY: env.int(1000, 1, 100_000, "messages routed concurrently by the broker's emitter"),
  MQTT_COALESCE_WRITES: env.bool(
    true,
    "gather the packets written to a TCP/TLS connection in one event-loop turn into one system call (off = one per packet, Aedes's own behaviour)",
  ),
  // off: with it on, 10,000 devices took longer to connect in bench:e2e (docs/broker.md, "Routing slots freed when written")
  MQTT_PROMPT_DELIVERY: env.bool(
    false,
    "a delivery frees its routing slot as soon as its packet is written, not two event-loop turns later as in Aedes (less CPU per message; slower connection storms)",
  ),
  MQTT_WRITE_HIGH_WATER_KB: env.int(
    512,
    16,
    65_536,
    "bytes (KB) a connection may hold unsent before its deliveries wait for the socket to drain (Node's default: 16)",
  ),
  MQTT_JSON_MIRROR: env.bool(
    false,
    "republish every device and service message decoded as JSON under json/{topic}, for plain MQTT tools (costs a decode per message)",
  ),
  MQTT_SHUTDOWN_GRACE_MS: env.int(
    5_000,
    0,
    120_000,
    "on shutdown, how long in-flight deliveries may take before connections are closed",
  ),
  LOG_LEVEL: env.logLevel(),
});

export type BrokerConfig = z.infer<typeof BrokerConfigSchema>;

export function loadBrokerConfig(source: Record<string, string | undefined> = process.env): Readonly<BrokerConfig> {
  return loadConfig(BrokerConfigSchema, source);
}
