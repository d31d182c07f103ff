import { randomInt } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import { Gauge, type Registry } from "prom-client";
import type { SerialPort } from "serialport";
import { systemClock, type Clock, type Timer } from "@esp-fleet/common/clock";
import { errorMessage } from "@esp-fleet/common/errors";
import type { Logger } from "@esp-fleet/common/logger";
import {
  commandFilter,
  commandReplyTopic,
  deviceTopic,
  encodeCbor,
  parseTopic,
  serviceTopic,
  type DeviceAddress,
} from "@esp-fleet/schemas";
import { FrameReader, type ReaderCounters, type ReaderEvent } from "./frame-reader.ts";
import { PROTOCOL_VERSION, type DeviceHello, type Frame, type Publish } from "./frames.ts";
import { LinkEndpoint, type LinkCounters } from "./link.ts";
import { closeSerialPort, openSerialPort } from "./serial-port.ts";

export interface BridgeOptions {
  port: string;
  baud?: number;
  mqttUrl: string;
  /** MQTT username; default: the device id from its hello (per-device credentials). */
  username?: string;
  password?: string;
  /** wait between attempts to (re)open the port, ms */
  reopenMs?: number;
  /** publish the bridge's own status (svc/bridge/{dev}/status) this often, ms */
  statusIntervalMs?: number;
  clock?: Clock;
  log: Logger;
  /** register the bridge's metrics here */
  metrics?: Registry;
}

/** The frame reader's counters, plus the bridge's own. */
export interface BridgeCounters extends ReaderCounters {
  /** messages published to MQTT on the device's topics */
  published: number;
  publishErrors: number;
  /** device publishes received again (its retransmissions after a lost ack) */
  duplicates: number;
  /** retransmissions the device reports in its heartbeats (latest session) */
  deviceRetries: number;
  /** frames the device reports it dropped (latest session) */
  deviceBadFrames: number;
  /** publishes left unacknowledged because no MQTT session was ready (the device retries them) */
  deferred: number;
  commandsSent: number;
  commandRetries: number;
  commandsLost: number;
  /** device sessions started (device hellos with a new session id) */
  attaches: number;
  /** times the device went silent or its port closed while attached */
  detaches: number;
  portOpens: number;
}

export type BridgeState = "waiting-port" | "waiting-device" | "attached" | "stopped";

const QOS: Record<Publish["ch"], { qos: 0 | 1; retain: boolean }> = {
  telemetry: { qos: 1, retain: false },
  status: { qos: 1, retain: true },
  meta: { qos: 1, retain: true },
  event: { qos: 1, retain: false },
  log: { qos: 0, retain: false },
  cmd_res: { qos: 1, retain: false },
};

const CONSOLE_BACKLOG = 100;

/**
 * Serial ↔ MQTT bridge (DESIGN §4). Opens the port, asks the device to introduce itself (host `hello`),
 * then connects to the broker AS that device (client id = device id, its credentials, its `status:
 * offline` payload as the will) and publishes its frames' payloads unchanged on its own topics — ingest
 * cannot tell a bridged device from a direct one. Commands on `{site}/{kind}/{dev}/cmd/+` go down as
 * reliable `command` frames. Console text goes to `log`. When the device goes silent (3 heartbeat
 * intervals) or the port closes, the bridge publishes the device's `offline` status, drops the MQTT
 * session, and waits for the device (or the port) to come back.
 */
export class SerialBridge {
  readonly counters: BridgeCounters = {
    framesOk: 0,
    crcErrors: 0,
    malformed: 0,
    bodyErrors: 0,
    oversize: 0,
    resyncs: 0,
    droppedBytes: 0,
    consoleLines: 0,
    published: 0,
    publishErrors: 0,
    duplicates: 0,
    deviceRetries: 0,
    deviceBadFrames: 0,
    deferred: 0,
    commandsSent: 0,
    commandRetries: 0,
    commandsLost: 0,
    attaches: 0,
    detaches: 0,
    portOpens: 0,
  };
  state: BridgeState = "waiting-port";
  /** the device on the line, from its last hello */
  device: DeviceHello | undefined;

  readonly #o: BridgeOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #reader = new FrameReader();
  #port: SerialPort | undefined;
  #link: LinkEndpoint | undefined;
  #client: MqttClient | undefined;
  #addr: DeviceAddress | undefined;
  #lastFrameAt = 0;
  #timers: { reopen?: Timer; hello?: Timer; silence?: Timer; heartbeat?: Timer; status?: Timer } = {};
  #console: string[] = [];
  #linkBase: LinkCounters = { sent: 0, retries: 0, acked: 0, lost: 0, dropped: 0, received: 0, duplicates: 0 };
  #stopped = false;
  #listeners = new Set<(ev: BridgeEvent) => void>();

  constructor(opts: BridgeOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
    if (opts.metrics) this.#registerMetrics(opts.metrics);
  }

  /** Observe attach/detach/console events (tests, the bench). Listeners must not throw. */
  on(listener: (ev: BridgeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async start(): Promise<void> {
    await this.#open();
    this.#armStatus();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.state = "stopped";
    for (const t of Object.values(this.#timers)) t?.cancel();
    await this.#detach("bridge stopped");
    this.#link?.stop();
    if (this.#port) await closeSerialPort(this.#port);
    this.#port = undefined;
  }

  // ------------------------------------------------------------------------------------- the port

  async #open(): Promise<void> {
    if (this.#stopped) return;
    try {
      const port = await openSerialPort(this.#o.port, this.#o.baud ?? 921600);
      if (this.#stopped) {
        await closeSerialPort(port);
        return;
      }
      this.#port = port;
      this.counters.portOpens++;
      this.state = "waiting-device";
      this.#log.info({ port: this.#o.port }, "serial port open; waiting for the device's hello");
      this.#link = new LinkEndpoint({
        clock: this.#clock,
        write: (b) => {
          if (port.isOpen) port.write(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
        },
        retryMs: 200,
        maxRetries: 20,
        window: 4,
      });
      const sid = randomInt(0, 0xffff_ffff);
      port.on("data", (chunk: Buffer) => this.#onBytes(chunk));
      port.on("error", (err) => this.#log.warn({ err, port: this.#o.port }, "serial port error"));
      port.on("close", () => {
        if (this.#port === port && !this.#stopped) void this.#onPortClosed();
      });
      const solicit = () => {
        if (this.state !== "waiting-device" || this.#port !== port) return;
        this.#link?.sendFrame({ type: "hello", body: { role: "host", proto: PROTOCOL_VERSION, sid, ask: true } });
        this.#timers.hello = this.#clock.setTimeout(solicit, 1000);
      };
      this.#hostSid = sid;
      solicit();
    } catch (err) {
      if (this.state !== "waiting-port")
        this.#log.warn({ err: errorMessage(err), port: this.#o.port }, "cannot open serial port; retrying");
      this.state = "waiting-port";
      this.#timers.reopen = this.#clock.setTimeout(() => void this.#open(), this.#o.reopenMs ?? 1000);
    }
  }

  #hostSid = 0;

  async #onPortClosed(): Promise<void> {
    this.#log.warn({ port: this.#o.port }, "serial port closed");
    this.#retireLink();
    this.#port = undefined;
    await this.#detach("port closed");
    if (this.#stopped) return;
    this.state = "waiting-port";
    this.#timers.reopen = this.#clock.setTimeout(() => void this.#open(), this.#o.reopenMs ?? 1000);
  }

  #retireLink(): void {
    if (!this.#link) return;
    this.#link.stop();
    for (const k of Object.keys(this.#linkBase) as (keyof LinkCounters)[]) this.#linkBase[k] += this.#link.counters[k];
    this.#link = undefined;
  }

  // ------------------------------------------------------------------------------------- frames

  #onBytes(chunk: Uint8Array): void {
    if (this.#stopped) return; // nothing is acknowledged once stopping: the device keeps it for the next bridge
    let events: ReaderEvent[];
    try {
      events = this.#reader.push(chunk);
    } catch (err) {
      this.#log.error({ err }, "frame reader failed (bug)");
      return;
    }
    this.#syncReaderCounters();
    for (const ev of events) {
      try {
        switch (ev.type) {
          case "frame":
            this.#onFrame(ev.frame);
            break;
          case "console":
            this.#onConsole(ev.line);
            break;
          case "bad":
            if (ev.error.kind === "body") this.#log.warn({ error: ev.error.error }, "frame with a valid CRC but an invalid body");
            else this.#log.debug({ kind: ev.error.kind, error: ev.error.error, bytes: ev.bytes }, "dropped a bad frame");
            break;
        }
      } catch (err) {
        this.#log.error({ err }, "serial event handler failed");
      }
    }
  }

  #syncReaderCounters(): void {
    const r = this.#reader.counters;
    Object.assign(this.counters, {
      framesOk: r.framesOk,
      crcErrors: r.crcErrors,
      malformed: r.malformed,
      bodyErrors: r.bodyErrors,
      oversize: r.oversize,
      resyncs: r.resyncs,
      droppedBytes: r.droppedBytes,
      consoleLines: r.consoleLines,
    });
  }

  #onFrame(frame: Frame): void {
    const link = this.#link;
    if (!link) return;
    this.#lastFrameAt = this.#clock.now();
    // A publish is acknowledged only when it can be handed to MQTT: without a session (not attached yet,
    // or detaching) it stays unacknowledged and the device sends it again later.
    if (frame.type === "publish" && (!this.#client || this.state !== "attached")) {
      this.counters.deferred++;
      return;
    }
    const before = link.counters.duplicates;
    const f = link.receive(frame);
    this.counters.duplicates += link.counters.duplicates - before;
    if (!f) return;
    switch (f.type) {
      case "hello":
        if (f.body.role === "device") this.#onDeviceHello(f.body);
        return;
      case "publish":
        this.#onPublish(f.body);
        return;
      case "heartbeat":
        if (f.body.rt !== undefined) this.counters.deviceRetries = f.body.rt;
        if (f.body.bad !== undefined) this.counters.deviceBadFrames = f.body.bad;
        return;
      case "command":
      case "ack":
        return;
      default: {
        const never: never = f;
        return never;
      }
    }
  }

  #onDeviceHello(h: DeviceHello): void {
    const same = this.device && this.state === "attached" && this.device.dev === h.dev && this.device.sid === h.sid;
    this.#link?.sendFrame({ type: "hello", body: { role: "host", proto: PROTOCOL_VERSION, sid: this.#hostSid } });
    if (same) {
      this.device = h;
      return;
    }
    void this.#attach(h);
  }

  async #attach(h: DeviceHello): Promise<void> {
    const prev = this.device;
    if (this.#client && (!prev || prev.dev !== h.dev)) await this.#detach("another device on the line");
    else if (this.#client) await this.#endClient(); // same device, new session (reboot): new will
    this.device = h;
    this.#addr = { site: h.site, kind: h.kind, dev: h.dev };
    this.state = "attached";
    this.counters.attaches++;
    this.#timers.hello?.cancel();
    this.#log.info({ dev: h.dev, kind: h.kind, site: h.site, fw: h.fw, boot: h.boot, caps: h.caps }, "device attached");
    const addr = this.#addr;
    const client = mqtt.connect(this.#o.mqttUrl, {
      clientId: h.dev,
      username: this.#o.username ?? h.dev,
      password: this.#o.password,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      ...(h.will ? { will: { topic: deviceTopic(addr, "status"), payload: Buffer.from(h.will), qos: 1, retain: true } } : {}),
    });
    // Attach the message handler before CONNACK (DESIGN §9).
    client.on("message", (topic, payload) => this.#onCommand(topic, payload));
    client.on("error", (err) => this.#log.warn({ err: err.message, dev: h.dev }, "MQTT error"));
    client.on("connect", () => {
      client.subscribe(commandFilter(addr), { qos: 1 }, (err) => {
        if (err) this.#log.warn({ err: err.message }, "command subscription refused");
      });
    });
    this.#client = client;
    this.#emit({ type: "attached", device: h });
    for (const line of this.#console.splice(0)) this.#publishLog(line);
    this.#armSilence(h.hb);
    this.#armHeartbeat(h.hb);
    this.#publishBridgeStatus();
  }

  async #detach(reason: string): Promise<void> {
    if (this.state === "attached") {
      this.counters.detaches++;
      this.#log.warn({ dev: this.device?.dev, reason }, "device detached");
      this.#emit({ type: "detached", reason });
      this.state = this.#port ? "waiting-device" : "waiting-port";
    }
    this.#timers.silence?.cancel();
    this.#timers.heartbeat?.cancel();
    this.#publishBridgeStatus(reason);
    const client = this.#client;
    const addr = this.#addr;
    const will = this.device?.will;
    // From here on publishes are not acknowledged: the device keeps them for the next session.
    this.#client = undefined;
    if (client && addr && will) {
      // The device can no longer say goodbye itself: publish its offline status for it.
      await new Promise<void>((resolve) => {
        client.publish(deviceTopic(addr, "status"), Buffer.from(will), { qos: 1, retain: true }, () => resolve());
        this.#clock.setTimeout(resolve, 2000);
      });
      this.counters.published++;
    }
    await this.#endClient(client);
    if (this.state === "waiting-device" && this.#port && !this.#stopped) {
      const port = this.#port;
      const solicit = () => {
        if (this.state !== "waiting-device" || this.#port !== port) return;
        this.#link?.sendFrame({ type: "hello", body: { role: "host", proto: PROTOCOL_VERSION, sid: this.#hostSid, ask: true } });
        this.#timers.hello = this.#clock.setTimeout(solicit, 1000);
      };
      solicit();
    }
  }

  async #endClient(client = this.#client): Promise<void> {
    if (client === this.#client) this.#client = undefined;
    if (!client) return;
    await new Promise<void>((resolve) => {
      client.end(false, {}, () => resolve());
      this.#clock.setTimeout(() => {
        client.end(true);
        resolve();
      }, 2000);
    });
  }

  #onPublish(p: Publish): void {
    const client = this.#client;
    const addr = this.#addr;
    if (!client || !addr) {
      this.counters.publishErrors++;
      this.#log.warn({ ch: p.ch }, "publish frame before the device's hello; dropped");
      return;
    }
    const topic = p.ch === "cmd_res" ? commandReplyTopic(addr, p.cmd!) : deviceTopic(addr, p.ch);
    const { qos, retain } = QOS[p.ch];
    this.counters.published++;
    client.publish(topic, Buffer.from(p.p.buffer, p.p.byteOffset, p.p.byteLength), { qos, retain }, (err) => {
      if (err) {
        this.counters.publishErrors++;
        this.#log.warn({ err: err.message, topic }, "MQTT publish failed");
      }
    });
  }

  #onConsole(line: string): void {
    this.#emit({ type: "console", line });
    this.#log.debug({ line }, "device console");
    if (this.#client && this.#addr) this.#publishLog(line);
    else {
      this.#console.push(line);
      if (this.#console.length > CONSOLE_BACKLOG) this.#console.shift();
    }
  }

  #publishLog(line: string): void {
    if (!this.#client || !this.#addr) return;
    this.#client.publish(deviceTopic(this.#addr, "log"), line, { qos: 0 });
  }

  #onCommand(topic: string, payload: Buffer): void {
    const t = parseTopic(topic);
    if (!t.ok || t.value.type !== "device" || t.value.channel !== "cmd" || !this.#link) return;
    try {
      this.#link.sendReliable({ type: "command", body: { name: t.value.cmd, p: payload } });
      this.counters.commandsSent++;
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), topic }, "command too large for a frame; dropped");
    }
  }

  // ------------------------------------------------------------------------------------- timers

  #armSilence(hbMs: number): void {
    this.#timers.silence?.cancel();
    this.#timers.silence = this.#clock.setTimeout(() => {
      if (this.state !== "attached") return;
      if (this.#clock.now() - this.#lastFrameAt >= hbMs * 3) void this.#detach("device silent");
      else this.#armSilence(hbMs);
    }, hbMs);
  }

  #armHeartbeat(hbMs: number): void {
    this.#timers.heartbeat?.cancel();
    this.#timers.heartbeat = this.#clock.setTimeout(() => {
      if (this.state !== "attached") return;
      this.#link?.sendFrame({ type: "heartbeat", body: { up: Math.round(process.uptime() * 1000) } });
      const lc = this.linkCounters;
      this.counters.commandRetries = lc.retries;
      this.counters.commandsLost = lc.lost;
      this.#armHeartbeat(hbMs);
    }, hbMs);
  }

  #armStatus(): void {
    const every = this.#o.statusIntervalMs ?? 10_000;
    this.#timers.status = this.#clock.setTimeout(() => {
      this.#publishBridgeStatus();
      this.#armStatus();
    }, every);
  }

  get linkCounters(): LinkCounters {
    const c = { ...this.#linkBase };
    if (this.#link) for (const k of Object.keys(c) as (keyof LinkCounters)[]) c[k] += this.#link.counters[k];
    return c;
  }

  /** The bridge's own retained status, `svc/bridge/{dev}/status` (CBOR). */
  #publishBridgeStatus(reason?: string): void {
    if (!this.#client || !this.device) return;
    const lc = this.linkCounters;
    this.counters.commandRetries = lc.retries;
    this.counters.commandsLost = lc.lost;
    const body = {
      state: this.state,
      reason,
      port: this.#o.port,
      dev: this.device.dev,
      fw: this.device.fw,
      boot: this.device.boot,
      ts: this.#clock.now(),
      cnt: { ...this.counters },
    };
    this.#client.publish(serviceTopic("bridge", this.device.dev, "status"), Buffer.from(encodeCbor(body)), {
      qos: 1,
      retain: true,
    });
  }

  #emit(ev: BridgeEvent): void {
    for (const l of this.#listeners) {
      try {
        l(ev);
      } catch (err) {
        this.#log.error({ err }, "bridge listener failed");
      }
    }
  }

  #registerMetrics(reg: Registry): void {
    const counters: Gauge = new Gauge({
      name: "esp_fleet_bridge_counter",
      help: "serial bridge counters (frames ok, CRC errors, resyncs, retries, …) by name",
      labelNames: ["counter"],
      registers: [reg],
      collect: (): void => {
        this.#syncReaderCounters();
        for (const [k, v] of Object.entries(this.counters)) counters.set({ counter: k }, v);
      },
    });
    const attached: Gauge = new Gauge({
      name: "esp_fleet_bridge_attached",
      help: "1 while a device is attached",
      registers: [reg],
      collect: (): void => attached.set(this.state === "attached" ? 1 : 0),
    });
  }
}

export type BridgeEvent =
  { type: "attached"; device: DeviceHello } | { type: "detached"; reason: string } | { type: "console"; line: string };
