import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { afterEach } from "vitest";
import { silentLogger } from "@esp-fleet/common/logger";
import { createBroker, type BrokerService } from "../src/broker.ts";
import { loadBrokerConfig } from "../src/config.ts";
import { createCredential } from "../src/provision.ts";
import type { Role, ServiceScope } from "../src/credentials.ts";

export interface TestBrokerHandle {
  broker: BrokerService;
  url: string;
  wsUrl: string;
  dataDir: string;
  /** create a credential, return its password */
  provision(username: string, role: Role, scopes?: ServiceScope[]): Promise<string>;
  close(): Promise<void>;
}

export async function startBroker(env: Record<string, string> = {}): Promise<TestBrokerHandle> {
  const dataDir = await mkdtemp(join(tmpdir(), "broker-test-"));
  const config = loadBrokerConfig({
    MQTT_HOST: "127.0.0.1",
    MQTT_PORT: "0",
    MQTT_WS_PORT: "0",
    DATA_DIR: dataDir,
    MQTT_SHUTDOWN_GRACE_MS: "500",
    ...env,
  });
  const broker = await createBroker(config, { logger: silentLogger() });
  await broker.start();
  return {
    broker,
    url: `mqtt://127.0.0.1:${broker.ports.mqtt}`,
    wsUrl: `ws://127.0.0.1:${broker.ports.ws}`,
    dataDir,
    async provision(username, role, scopes) {
      return (await createCredential(broker.credentials, { username, role, ...(scopes ? { scopes } : {}) })).password;
    },
    async close() {
      await broker.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Connect and wait for CONNACK; rejects with the client's error (e.g. a refused CONNACK). */
export function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once("connect", () => resolve(c));
    c.once("error", (e) => {
      c.end(true);
      reject(e);
    });
  });
}

export const closeClient = (c: MqttClient | undefined) => (c ? c.endAsync(true) : Promise.resolve());

/** For a test file: the clients and brokers its tests open, closed after each test. */
export function closedAfterEach(): { clients: MqttClient[]; brokers: TestBrokerHandle[] } {
  const opened = { clients: [] as MqttClient[], brokers: [] as TestBrokerHandle[] };
  afterEach(async () => {
    await Promise.all(opened.clients.splice(0).map(closeClient));
    for (const b of opened.brokers.splice(0)) await b.close();
  });
  return opened;
}

/**
 * A broker (closed with `opened`) with `n` QoS 1 messages (`q/0` … `q/{n-1}`, in that order) queued for the
 * persistent session `clientId`, subscribed to `q/#`, and the client that published them; no bound on the
 * offline queue (a device session holds 1,000 by default).
 */
export async function brokerWithQueue(
  opened: { clients: MqttClient[]; brokers: TestBrokerHandle[] },
  clientId: string,
  n: number,
): Promise<TestBrokerHandle & { publisher: MqttClient }> {
  const b = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_MAX_QUEUED_MESSAGES: "0" });
  opened.brokers.push(b);
  const sub = await connect(b.url, { clientId, clean: false });
  await sub.subscribeAsync("q/#", { qos: 1 });
  await sub.endAsync();
  const pub = await connect(b.url, { clientId: `${clientId}-pub` });
  opened.clients.push(pub);
  for (let i = 0; i < n; i += 500)
    await Promise.all(
      Array.from({ length: Math.min(500, n - i) }, (_, k) => pub.publishAsync(`q/${i + k}`, String(i + k), { qos: 1 })),
    );
  return { ...b, publisher: pub };
}
