// first: mqtt-packet must load with its quiet loggers before MQTT.js imports it (common/src/quiet-debug.ts)
import "@esp-fleet/common/quiet-debug";
// one write() per MQTT packet (common/src/packet-writes.ts)
import "@esp-fleet/common/packet-writes";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { commandFilter } from "@esp-fleet/schemas";
import type {
  CommandHandler,
  ConnectOptions,
  MqttClientKind,
  DeviceAddressInfo,
  DeviceTransport,
  LinkHandler,
  PublishChannel,
  PublishOptions,
  TransportFactory,
} from "../transport.ts";
import { InflightWindow } from "./inflight.ts";
import { DeviceTopics } from "./topics.ts";
import { SessionTransport } from "./session.ts";
import { sharedKeepaliveTimer } from "./keepalive-timer.ts";

/** MQTT.js logs through `debug` by default: ~30 disabled-logger calls per publish and one `debug`
 * instance per client. The emulator has its own logging; MQTT.js's is off. */
const noLog = (): void => undefined;

function ownCopy(bytes: Uint8Array): Buffer {
  const b = Buffer.allocUnsafeSlow(bytes.byteLength);
  b.set(bytes);
  return b;
}

export interface MqttTransportOptions {
  url: string;
  /** MQTT username/password for a device; default: username = device id, no password. */
  credentials?: (dev: string) => { username: string; password?: string } | undefined;
  connectTimeoutMs?: number;
  /** Wall ms a clean close may wait for unacknowledged messages before it forces the socket shut. */
  closeTimeoutMs?: number;
  /** Which MQTT client a device runs (factory below): `session` (default; plain TCP URLs only) or `mqttjs`. */
  client?: MqttClientKind;
}


/**
 * One MQTT.js session per device: client id = device id, clean session off (the broker keeps the
 * command subscription and queues commands while the device is away), QoS 1, the will set per connect.
 * MQTT.js's own reconnect is off (`reconnectPeriod: 0`): the firmware decides when to retry and calls
 * `connect()` again, which re-opens the same client so its unacknowledged QoS 1 messages are resent,
 * in order, before anything newer.
 */
export class MqttTransport implements DeviceTransport {
  readonly #opts: MqttTransportOptions;
  readonly #addr: DeviceAddressInfo;
  readonly #topics: DeviceTopics;
  #client: MqttClient | undefined;
  #link: LinkHandler | undefined;
  #command: CommandHandler | undefined;
  /** A connect() is in progress or the link is up: a 'close' must be reported. */
  #live = false;
  #lastError = "closed";
  publishErrors = 0;

  constructor(addr: DeviceAddressInfo, opts: MqttTransportOptions) {
    this.#addr = addr;
    this.#opts = opts;
    this.#topics = new DeviceTopics(addr);
    this.#onSubscribed = (e) => {
      if (e) this.#lastError = `subscribe failed: ${e.message}`;
    };
    this.#onPublished = (e) => {
      if (e) this.publishErrors++;
    };
  }

  get client(): MqttClient | undefined {
    return this.#client;
  }

  connect(opts: ConnectOptions): void {
    const will = {
      topic: this.#topics.byChannel[opts.will.channel],
      // An exact-size copy with its own memory: a view would pin the whole 8 KB Buffer pool slab the
      // encoder's output came from for as long as the session lives (one will per device).
      payload: ownCopy(opts.will.payload),
      qos: opts.will.qos,
      retain: opts.will.retain,
    };
    this.#live = true;
    const existing = this.#client;
    if (existing) {
      existing.options.will = will;
      existing.options.keepalive = opts.keepaliveS;
      // Same client, same outgoing store: in-flight QoS 1 messages are resent after the CONNACK.
      existing.connect();
      return;
    }
    const cred = this.#opts.credentials?.(this.#addr.dev) ?? { username: this.#addr.dev };
    // One table for the QoS 1 packets in flight and their identifiers (inflight.ts), kept with the client
    // across reconnects like the rest of the session.
    const window = new InflightWindow();
    const options: IClientOptions = {
      clientId: this.#addr.dev,
      username: cred.username,
      password: cred.password,
      clean: false,
      keepalive: opts.keepaliveS,
      reconnectPeriod: 0,
      connectTimeout: this.#opts.connectTimeoutMs ?? 10_000,
      protocolVersion: 4,
      resubscribe: false,
      will,
      log: noLog,
      // A PINGREQ every keep-alive period (keepalive/2 timer ticks), whatever the traffic, instead of
      // re-arming the keep-alive timer on every PUBACK (keepalive-timer.ts).
      reschedulePings: false,
      outgoingStore: window as unknown as IClientOptions["outgoingStore"],
      messageIdProvider: window,
      timerVariant: sharedKeepaliveTimer as unknown as IClientOptions["timerVariant"],
    };
    const client = mqtt.connect(this.#opts.url, options);
    this.#client = client;
    // Attach the message handler before the CONNACK (DESIGN §9): queued commands arrive right after it.
    client.on("message", (topic, payload) => {
      if (client !== this.#client) return;
      const name = this.#topics.command(topic);
      if (name !== undefined) this.#command?.(name, payload);
    });
    client.on("connect", (connack) => {
      if (client !== this.#client) return;
      if (!connack.sessionPresent) client.subscribe(commandFilter(this.#addr), { qos: 1 }, this.#onSubscribed);
      this.#link?.({ up: true, sessionPresent: connack.sessionPresent });
    });
    client.on("error", (e) => {
      this.#lastError = e.message.slice(0, 120);
    });
    client.on("close", () => {
      if (client !== this.#client || !this.#live) return;
      this.#live = false;
      const reason = this.#lastError;
      this.#lastError = "closed";
      this.#link?.({ up: false, reason });
    });
  }

  // Assigned in the constructor, not as class-field arrows: under tsx's keep-names transform each
  // class-field arrow gets a dictionary-mode `name` property (~256 B per device).
  readonly #onSubscribed: (e: Error | null) => void;
  readonly #onPublished: (e?: Error) => void;

  publish(channel: PublishChannel, payload: Uint8Array | string, opts: PublishOptions): void {
    const client = this.#client;
    if (!client) return;
    const topic = this.#topics.topic(channel);
    const body =
      typeof payload === "string" || Buffer.isBuffer(payload)
        ? payload
        : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    client.publish(topic, body, opts, this.#onPublished);
  }

  onCommand(handler: CommandHandler): void {
    this.#command = handler;
  }

  onLink(handler: LinkHandler): void {
    this.#link = handler;
  }

  close(clean: boolean): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#live = false;
    if (!client) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      };
      // A clean close waits for in-flight QoS 1 acks; bound it so a dead broker cannot hang a shutdown.
      const timer = setTimeout(() => client.end(true, done), this.#opts.closeTimeoutMs ?? 3000);
      timer.unref();
      if (clean && client.connected) client.end(false, done);
      else client.end(true, done);
    });
  }
}

/**
 * One MQTT session per device: the lean `SessionTransport` (transports/session.ts) for `mqtt://` and
 * `tcp://` URLs unless `client: "mqttjs"`; MQTT.js (this file) for TLS and WebSocket URLs or when asked.
 */
export function mqttTransportFactory(opts: MqttTransportOptions): TransportFactory {
  const plainTcp = /^(mqtt|tcp):\/\//i.test(opts.url);
  if (plainTcp && (opts.client ?? "session") === "session") return (addr) => new SessionTransport(addr, opts);
  return (addr) => new MqttTransport(addr, opts);
}
