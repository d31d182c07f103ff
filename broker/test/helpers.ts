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
