import { spawn } from "node:child_process";
import { connect as netConnect } from "node:net";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import mqtt, { type MqttClient } from "mqtt";
import mqttPacket from "mqtt-packet";
import { buildHttpApp } from "@esp-fleet/common/http";
import { waitFor } from "@esp-fleet/common/testing";
import { brokerHttpPlugin } from "../src/http-plugin.ts";
import { closeClient, connect, startBroker, type TestBrokerHandle } from "./helpers.ts";

const MOSQUITTO_SUB = ["/usr/bin/mosquitto_sub", "/usr/sbin/mosquitto_sub"].find(existsSync);
const MOSQUITTO_PUB = ["/usr/bin/mosquitto_pub", "/usr/sbin/mosquitto_pub"].find(existsSync);

/** A CONNECT (3.1.1) built by hand: mqtt-packet refuses an empty client id with CleanSession=0. */
function rawConnect(clientId: string, clean: boolean, username: string, password: string): Buffer {
  const str = (v: string) => {
    const b = Buffer.from(v, "utf8");
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const flags = 0x80 | 0x40 | (clean ? 0x02 : 0);
  const body = Buffer.concat([str("MQTT"), Buffer.from([4, flags, 0, 0]), str(clientId), str(username), str(password)]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** Write raw packets, collect what comes back until the broker closes (or 3 s pass). */
async function rawSession(port: number, packets: Buffer[]): Promise<{ bytes: Buffer; closed: boolean }> {
  const sock = netConnect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  sock.on("data", (d: Buffer) => chunks.push(d));
  const closed = new Promise<boolean>((resolve) => {
    sock.once("close", () => resolve(true));
    setTimeout(() => resolve(false), 3000).unref();
  });
  await new Promise((r) => sock.once("connect", r));
  for (const p of packets) {
    sock.write(p);
    await new Promise((r) => setTimeout(r, 150));
  }
  const result = { closed: await closed, bytes: Buffer.concat(chunks) };
  sock.destroy();
  return result;
}

describe("broker with credentials (MQTT_ANONYMOUS=off)", () => {
  let b: TestBrokerHandle;
  const pw: Record<string, string> = {};
  const clients: MqttClient[] = [];
  const open = async (username: string, extra: Parameters<typeof connect>[1] = {}) => {
    const c = await connect(b.url, {
      username,
      password: pw[username] ?? "",
      clientId: `${username}-${clients.length}`,
      ...extra,
    });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    b = await startBroker({ MQTT_ANONYMOUS: "off", MQTT_MAX_PACKET_SIZE: "4096" });
    pw.dev1 = await b.provision("dev1", "device");
    pw.dev2 = await b.provision("dev2", "device");
    pw.viewer = await b.provision("viewer", "viewer");
    pw.sqal = await b.provision("sqal", "service", ["sqal"]);
  });
  afterAll(async () => {
    await Promise.all(clients.map(closeClient));
    await b?.close();
  });

  it("refuses a wrong password with CONNACK 4 and counts it", async () => {
    await expect(connect(b.url, { username: "dev1", password: "nope" })).rejects.toMatchObject({ code: 4 });
    await expect(connect(b.url, { username: "ghost", password: "x" })).rejects.toMatchObject({ code: 4 });
    const metrics = await b.broker.http.metrics.getSingleMetricAsString("broker_auth_refused_total");
    expect(metrics).toMatch(/reason="bad_credentials"} 2/);
  });

  it("refuses a device whose client id is not its own device id (no session takeover) with CONNACK 2", async () => {
    await expect(connect(b.url, { username: "dev1", password: pw.dev1 ?? "", clientId: "dev2" })).rejects.toMatchObject({
      code: 2,
    });
    await expect(connect(b.url, { username: "dev1", password: pw.dev1 ?? "", clientId: "dev10" })).rejects.toMatchObject({
      code: 2,
    });
    const own = await connect(b.url, { username: "dev1", password: pw.dev1 ?? "", clientId: "dev1" });
    await closeClient(own);
  });

  it("refuses anonymous clients with CONNACK 5 when MQTT_ANONYMOUS=off", async () => {
    await expect(connect(b.url)).rejects.toMatchObject({ code: 5 });
  });

  it("refuses an empty client id with CleanSession=0 with CONNACK 2 [MQTT-3.1.3-8]", async () => {
    // MQTT.js refuses to send this CONNECT, so it goes over a raw socket
    const { bytes, closed } = await rawSession(b.broker.ports.mqtt, [rawConnect("", false, "dev1", pw.dev1 ?? "")]);
    expect([...bytes]).toEqual([0x20, 0x02, 0x00, 0x02]);
    expect(closed).toBe(true);
  });

  it("device A cannot publish to B's topics nor read B's commands; the viewer reads everything and publishes nothing", async () => {
    const viewer = await open("viewer");
    const seen: string[] = [];
    viewer.on("message", (t) => seen.push(t));
    await viewer.subscribeAsync("#", { qos: 1 });
    const a = await open("dev1");
    // B's commands: SUBACK 0x80
    // MQTT.js rejects a SUBACK holding 0x80; the packet rides on the error
    const suback = await a
      .subscribeAsync(["s1/sqal/dev2/cmd/+", "s1/sqal/dev1/cmd/+"], { qos: 1 })
      .catch((e: { packet?: { granted?: number[] } }) => e.packet);
    expect(suback && "granted" in suback ? suback.granted : suback).toEqual([128, 1]);
    // publishing as B is acknowledged (QoS 1) but dropped; A's own telemetry goes through
    await a.publishAsync("s1/sqal/dev2/telemetry", "forged", { qos: 1 });
    await a.publishAsync("s1/sqal/dev1/telemetry", "mine", { qos: 1 });
    await waitFor(() => seen.includes("s1/sqal/dev1/telemetry"), "own telemetry at the viewer");
    expect(seen).not.toContain("s1/sqal/dev2/telemetry");
    expect(a.connected).toBe(true); // a refused publish does not cost the session
    // the viewer cannot publish (dropped, counted)
    await viewer.publishAsync("s1/sqal/dev1/cmd/reboot", "x", { qos: 1 });
    // a service with the sqal scope may send commands, which reach the device
    const cmds: string[] = [];
    a.on("message", (t) => cmds.push(t));
    const sqal = await open("sqal");
    await sqal.publishAsync("s1/sqal/dev1/cmd/inspect", "go", { qos: 1 });
    await waitFor(() => cmds.includes("s1/sqal/dev1/cmd/inspect"), "command at the device");
    expect(cmds).not.toContain("s1/sqal/dev1/cmd/reboot");
    const refused = await b.broker.http.metrics.getSingleMetricAsString("broker_publish_refused_total");
    expect(refused).toMatch(/kind="publish"} 2/);
  });

  it("delivers the will after an unclean disconnect, and refuses a will on someone else's topic", async () => {
    const viewer = await open("viewer");
    const got: { topic: string; payload: string; retain: boolean }[] = [];
    viewer.on("message", (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
    await viewer.subscribeAsync(["s1/sqal/dev1/status", "s1/sqal/dev2/status"], { qos: 1 });
    const dev = await connect(b.url, {
      username: "dev1",
      password: pw.dev1,
      clientId: "dev1-will",
      will: { topic: "s1/sqal/dev1/status", payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    const forger = await connect(b.url, {
      username: "dev1",
      password: pw.dev1,
      clientId: "dev1-forger",
      will: { topic: "s1/sqal/dev2/status", payload: Buffer.from("offline"), qos: 1, retain: false },
    });
    (dev.stream as unknown as { destroy(): void }).destroy();
    (forger.stream as unknown as { destroy(): void }).destroy();
    await waitFor(() => got.some((g) => g.topic === "s1/sqal/dev1/status" && g.payload === "offline"), "the will");
    await new Promise((r) => setTimeout(r, 200));
    expect(got.filter((g) => g.topic === "s1/sqal/dev2/status")).toEqual([]);
    dev.end(true);
    forger.end(true);
  });

  it("closes the connection on a packet larger than MQTT_MAX_PACKET_SIZE", async () => {
    const dev = await open("dev1");
    const closed = new Promise<void>((resolve) => dev.once("close", () => resolve()));
    dev.publish("s1/sqal/dev1/telemetry", Buffer.alloc(10_000), { qos: 0 });
    await closed;
    expect(await b.broker.http.metrics.getSingleMetricAsString("broker_oversized_packets_total")).toMatch(/ 1$/m);
  });

  it("closes a raw connection that declares a huge remaining length before sending it", async () => {
    const { bytes, closed } = await rawSession(b.broker.ports.mqtt, [
      mqttPacket.generate({
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion: 4,
        clientId: "dev1-raw",
        clean: true,
        keepalive: 0,
        username: "dev1",
        password: Buffer.from(pw.dev1 ?? ""),
      }),
      Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), // PUBLISH announcing ~256 MB
    ]);
    expect([...bytes.subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]); // CONNACK accepted, then…
    expect(closed).toBe(true); // …closed on the oversized header, without waiting for the body
  });

  it("serves MQTT over WebSocket with the same credentials", async () => {
    const c = await connect(b.wsUrl, { username: "viewer", password: pw.viewer });
    clients.push(c);
    expect(c.connected).toBe(true);
    await expect(connect(b.wsUrl, { username: "viewer", password: "bad" })).rejects.toMatchObject({ code: 4 });
  });

  it.skipIf(!MOSQUITTO_SUB || !MOSQUITTO_PUB)("works with mosquitto_pub / mosquitto_sub", async () => {
    const sub = spawn(MOSQUITTO_SUB!, [
      "-h",
      "127.0.0.1",
      "-p",
      String(b.broker.ports.mqtt),
      "-u",
      "viewer",
      "-P",
      pw.viewer!,
      "-t",
      "s1/fridge/#",
      "-v",
      "-C",
      "1",
      "-W",
      "10",
    ]);
    let out = "";
    sub.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const subExit = new Promise<number | null>((r) => sub.once("exit", r));
    await new Promise<void>((resolve) => b.broker.aedes.once("subscribe", () => resolve()));
    await new Promise((r) => setTimeout(r, 100));
    const pub = spawn(MOSQUITTO_PUB!, [
      "-h",
      "127.0.0.1",
      "-p",
      String(b.broker.ports.mqtt),
      "-i",
      "dev2",
      "-u",
      "dev2",
      "-P",
      pw.dev2!,
      "-t",
      "s1/fridge/dev2/event",
      "-m",
      "door",
      "-q",
      "1",
    ]);
    const pubCode = await new Promise<number | null>((r) => pub.once("exit", r));
    expect(pubCode).toBe(0);
    const subCode = await subExit;
    expect(subCode).toBe(0);
    expect(out.trim()).toBe("s1/fridge/dev2/event door");
  });

  it("serves readiness, metrics and /broker through the shared HTTP context", async () => {
    const app = buildHttpApp(b.broker.http);
    await app.register(brokerHttpPlugin, { broker: b.broker });
    const ready = await app.inject({ url: "/health/ready" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks.broker.ok).toBe(true);
    const metrics = await app.inject({ url: "/metrics" });
    for (const name of [
      "broker_connected_clients",
      "broker_messages_in_total",
      "broker_messages_out_total",
      "broker_retained_messages",
      "esp_fleet_process_resident_memory_bytes",
    ])
      expect(metrics.body).toContain(name);
    const info = await app.inject({ url: "/broker" });
    expect(info.json()).toMatchObject({ ports: { mqtt: b.broker.ports.mqtt }, backend: "memory", credentials: "file" });
    await app.close();
  });
});

describe("anonymous policies", () => {
  it("MQTT_ANONYMOUS=read: anonymous clients read everything, their publishes are dropped", async () => {
    const b = await startBroker({ MQTT_ANONYMOUS: "read" });
    try {
      const devPw = await b.provision("d9", "device");
      const anon = await connect(b.url);
      const got: string[] = [];
      anon.on("message", (t) => got.push(t));
      expect((await anon.subscribeAsync("#", { qos: 1 }))[0]?.qos).toBe(1);
      await anon.publishAsync("s1/fridge/d9/telemetry", "forged", { qos: 1 });
      const dev = await connect(b.url, { username: "d9", password: devPw, clientId: "d9" });
      await dev.publishAsync("s1/fridge/d9/telemetry", "real", { qos: 1 });
      await waitFor(() => got.length >= 1, "telemetry at the anonymous reader");
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toEqual(["s1/fridge/d9/telemetry"]);
      await closeClient(anon);
      await closeClient(dev);
    } finally {
      await b.close();
    }
  });

  it("refuses a port that is in use with an error naming the variable", async () => {
    const b = await startBroker({ MQTT_ANONYMOUS: "full" });
    try {
      await expect(startBroker({ MQTT_PORT: String(b.broker.ports.mqtt) })).rejects.toThrow(
        /^MQTT_PORT=\d+: .*address already in use/,
      );
    } finally {
      await b.close();
    }
  });
});

describe("offline queue bounds (MQTT_MAX_QUEUED_MESSAGES, MQTT_MAX_QUEUED_MESSAGES_SERVICE)", () => {
  let b: TestBrokerHandle;
  const clients: MqttClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map(closeClient));
    await b?.close();
  });

  it("a service account's session keeps its larger queue while away; a viewer's keeps the first 100 and the rest are counted", async () => {
    b = await startBroker({ MQTT_ANONYMOUS: "off", MQTT_MAX_QUEUED_MESSAGES: "100", MQTT_MAX_QUEUED_MESSAGES_SERVICE: "1000" });
    const pw = {
      dev1: await b.provision("dev1", "device"),
      viewer: await b.provision("viewer", "viewer"),
      ingest: await b.provision("svc-ingest", "service", ["ingest"]),
    };
    const session = async (username: string, password: string) => {
      const c = await connect(b.url, { username, password, clientId: `${username}-q`, clean: false });
      clients.push(c);
      return c;
    };
    // both subscribe with persistent sessions, then go away
    for (const [u, p] of [
      ["svc-ingest", pw.ingest],
      ["viewer", pw.viewer],
    ] as const) {
      const c = await session(u, p);
      await c.subscribeAsync("s1/fridge/+/telemetry", { qos: 1 });
      await c.endAsync();
    }
    const dev = await connect(b.url, { username: "dev1", password: pw.dev1, clientId: "dev1" });
    clients.push(dev);
    for (let i = 0; i < 300; i++) await dev.publishAsync("s1/fridge/dev1/telemetry", String(i), { qos: 1 });
    // back: each gets its queue
    const got = { "svc-ingest": [] as string[], viewer: [] as string[] };
    for (const [u, p] of [
      ["svc-ingest", pw.ingest],
      ["viewer", pw.viewer],
    ] as const) {
      const c = mqtt.connect(b.url, { username: u, password: p, clientId: `${u}-q`, clean: false, reconnectPeriod: 0 });
      clients.push(c);
      c.on("message", (_t, payload) => got[u].push(payload.toString()));
    }
    await waitFor(() => got["svc-ingest"].length === 300 && got.viewer.length === 100, "both queues delivered");
    await new Promise((r) => setTimeout(r, 200));
    expect(got["svc-ingest"]).toEqual(Array.from({ length: 300 }, (_, i) => String(i)));
    // the oldest 100 kept, the newest 200 dropped and counted
    expect(got.viewer).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
    expect(await b.broker.http.metrics.getSingleMetricAsString("broker_offline_dropped_total")).toMatch(/ 200$/m);
  });
});
