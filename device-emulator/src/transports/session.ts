// first: mqtt-packet must load with its quiet loggers (common/src/quiet-debug.ts)
import "@esp-fleet/common/quiet-debug";
import { connect as netConnect, type Socket } from "node:net";
import mqttPacket, { type Packet, type Parser } from "mqtt-packet";
import { commandFilter, type DeviceChannel } from "@esp-fleet/schemas";
import type {
  CommandHandler,
  ConnectOptions,
  DeviceAddressInfo,
  DeviceTransport,
  LinkHandler,
  PublishChannel,
  PublishOptions,
} from "../transport.ts";
import { sharedKeepaliveTimer } from "./keepalive-timer.ts";
import { DeviceTopics } from "./topics.ts";
import { Unacked } from "./unacked.ts";
import type { MqttTransportOptions } from "./mqtt.ts";

/**
 * A device's MQTT 3.1.1 session on a plain TCP socket, the size of the client in the real firmware
 * (ESP-IDF's esp-mqtt): CONNECT with the will, clean session off, QoS 0/1 publishing, the command
 * subscription, keep-alive, and the unacknowledged QoS 1 messages kept and resent — in order, flagged
 * DUP, before anything newer — when the firmware reconnects. Packets are read and written with
 * mqtt-packet (the wire-format library Aedes and MQTT.js are built on), except the two hot ones: a
 * PUBLISH is framed directly into one buffer (the same bytes as mqtt-packet's, tested), and a socket
 * read that holds only whole PUBACKs is handled without the parser.
 *
 * Why not MQTT.js's client, as `transports/mqtt.ts` uses: it is a general client (options, stores,
 * streams, topic aliases, reconnection, MQTT 5), and that generality costs per message — 38–44 µs of CPU
 * per acknowledged QoS 1 publish against 22–23 µs for a bare session on the same sockets and broker
 * (docs/benchmarks.md, "Round 6"). At 10,000 messages/s that is a fifth of a core. The firmware owns
 * reconnection and buffering (`firmware.ts`), so a device needs none of the rest.
 *
 * Used for `mqtt://` and `tcp://` URLs; TLS and WebSocket URLs go through MQTT.js (`transports/mqtt.ts`).
 */
export class SessionTransport implements DeviceTransport {
  readonly #opts: MqttTransportOptions;
  readonly #addr: DeviceAddressInfo;
  readonly #host: string;
  readonly #port: number;
  readonly #topics: DeviceTopics;
  /** Each channel's topic as it is written in a PUBLISH: 2-byte length, then the UTF-8 bytes. */
  readonly #topicFields: Record<DeviceChannel, Buffer>;
  #link: LinkHandler | undefined;
  #command: CommandHandler | undefined;
  #sock: Socket | undefined;
  #parser: Parser | undefined;
  /** Bytes of a packet the parser holds from an earlier read (the PUBACK fast path only runs at 0). */
  #parserPending = 0;
  /** CONNACK accepted on the current socket. */
  #up = false;
  /** A connect() is in progress or the link is up: a 'close' must be reported. */
  #live = false;
  #lastError = "closed";
  /** QoS 1 messages not yet acknowledged, in publish order (unacked.ts: written in place, unlike a Map). */
  readonly #inflight = new Unacked();
  #lastId = 0;
  #subscribeId = 0;
  #connectTimer: NodeJS.Timeout | undefined;
  #keepalive: number | undefined;
  #pingOutstanding = false;
  /** Keep-alive checks since the outstanding PINGREQ was sent. */
  #pingWaits = 0;
  /** Acknowledgements received (PUBACK, PINGRESP), and their count at the last keep-alive check. */
  #acks = 0;
  #acksAtCheck = 0;
  /** A clean close waiting for the last PUBACK. */
  #onAllAcked: (() => void) | undefined;
  publishErrors = 0;

  constructor(addr: DeviceAddressInfo, opts: MqttTransportOptions) {
    const url = new URL(opts.url);
    if (url.protocol !== "mqtt:" && url.protocol !== "tcp:")
      throw new TypeError(`SessionTransport speaks plain TCP, not ${url.protocol}`);
    this.#addr = addr;
    this.#opts = opts;
    this.#host = url.hostname.replace(/^\[|\]$/g, "") || "localhost";
    this.#port = Number(url.port || 1883);
    const topics = new DeviceTopics(addr);
    this.#topics = topics;
    this.#topicFields = {
      telemetry: topicField(topics.byChannel.telemetry),
      status: topicField(topics.byChannel.status),
      meta: topicField(topics.byChannel.meta),
      event: topicField(topics.byChannel.event),
      log: topicField(topics.byChannel.log),
    };
  }

  /** Unacknowledged QoS 1 messages (for tests and diagnostics). */
  get inflight(): number {
    return this.#inflight.size;
  }

  /** The current socket, if any (tests drop it to emulate a broken link). */
  get socket(): Socket | undefined {
    return this.#sock;
  }

  onCommand(handler: CommandHandler): void {
    this.#command = handler;
  }

  onLink(handler: LinkHandler): void {
    this.#link = handler;
  }

  connect(opts: ConnectOptions): void {
    this.#drop(); // an earlier socket goes without a link event: this attempt replaces it
    this.#live = true;
    this.#lastError = "closed";
    const cred = this.#opts.credentials?.(this.#addr.dev) ?? { username: this.#addr.dev };
    const connectPacket = mqttPacket.generate({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clientId: this.#addr.dev,
      clean: false,
      keepalive: opts.keepaliveS,
      username: cred.username,
      ...(cred.password !== undefined ? { password: Buffer.from(cred.password) } : {}),
      will: {
        topic: this.#topics.byChannel[opts.will.channel],
        payload: Buffer.from(opts.will.payload),
        qos: opts.will.qos,
        retain: opts.will.retain,
      },
    });
    const sock = netConnect({ host: this.#host, port: this.#port });
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    this.#sock = sock;
    this.#parser = parser;
    this.#parserPending = 0;
    parser.on("packet", (p: Packet) => {
      if (sock === this.#sock) this.#onPacket(sock, p, opts.keepaliveS);
    });
    parser.on("error", (e: Error) => {
      if (sock !== this.#sock) return;
      this.#lastError = `protocol error: ${e.message}`.slice(0, 120);
      sock.destroy();
    });
    sock.on("connect", () => sock.write(connectPacket));
    sock.on("data", (d: Buffer) => {
      if (sock === this.#sock) this.#onData(d);
    });
    sock.on("error", (e: Error) => {
      if (sock === this.#sock) this.#lastError = e.message.slice(0, 120);
    });
    sock.on("close", () => this.#onClose(sock));
    this.#connectTimer = setTimeout(() => {
      if (sock !== this.#sock || this.#up) return;
      this.#lastError = "connack timeout";
      sock.destroy();
    }, this.#opts.connectTimeoutMs ?? 10_000);
    this.#connectTimer.unref();
  }

  publish(channel: PublishChannel, payload: Uint8Array | string, opts: PublishOptions): void {
    const topic = DeviceTopics.isReply(channel)
      ? topicField(this.#topics.topic(channel))
      : this.#topicFields[channel as DeviceChannel];
    const body = typeof payload === "string" ? Buffer.from(payload) : payload;
    if (opts.qos === 1) {
      const id = this.#nextId();
      if (id === 0) {
        this.publishErrors++; // 65,535 unacknowledged messages: no identifier left
        return;
      }
      const frame = publishFrame(topic, body, 1, opts.retain, id);
      this.#inflight.push(id, frame);
      if (this.#up) this.#sock?.write(frame);
      return;
    }
    if (this.#up) this.#sock?.write(publishFrame(topic, body, 0, opts.retain, 0));
  }

  /** Resolves with the number of QoS 1 messages discarded unacknowledged (transport.ts, contract 5). */
  close(clean: boolean): Promise<number> {
    const sock = this.#sock;
    this.#live = false;
    if (!sock) {
      const unacked = this.#inflight.size;
      this.#inflight.clear();
      return Promise.resolve(unacked);
    }
    return new Promise<number>((resolve) => {
      sock.once("close", () => {
        // RAM is gone with the session (an emulated reboot starts empty, as with a fresh MQTT.js client)
        const unacked = this.#inflight.size;
        this.#inflight.clear();
        resolve(unacked);
      });
      if (!clean || !this.#up) {
        sock.destroy();
        return;
      }
      // A clean close waits for the PUBACKs of what is in flight (bounded), then DISCONNECT: the will is discarded.
      const disconnect = () => {
        clearTimeout(timer);
        this.#onAllAcked = undefined;
        sock.end(DISCONNECT);
      };
      const timer = setTimeout(() => sock.destroy(), this.#opts.closeTimeoutMs ?? 3000);
      timer.unref();
      if (this.#inflight.size === 0) disconnect();
      else this.#onAllAcked = disconnect;
    });
  }

  // -------------------------------------------------------------------------------------------- input

  #onData(d: Buffer): void {
    // The hot case: a read that holds only whole PUBACKs (0x40 0x02 id id), none pending in the parser.
    if (this.#parserPending === 0 && (d.length & 3) === 0 && d.length > 0) {
      let only = true;
      for (let o = 0; o < d.length; o += 4) {
        if (d[o] !== 0x40 || d[o + 1] !== 0x02) {
          only = false;
          break;
        }
      }
      if (only) {
        for (let o = 0; o < d.length; o += 4) this.#onPuback(((d[o + 2] as number) << 8) | (d[o + 3] as number));
        return;
      }
    }
    this.#parserPending = (this.#parser as Parser).parse(d);
  }

  #onPuback(id: number): void {
    this.#acks++;
    this.#inflight.remove(id);
    if (this.#inflight.size === 0) this.#onAllAcked?.();
  }

  #onPacket(sock: Socket, p: Packet, keepaliveS: number): void {
    switch (p.cmd) {
      case "connack": {
        clearTimeout(this.#connectTimer);
        if (p.returnCode !== 0) {
          this.#lastError = `connection refused: ${CONNACK_REFUSALS[p.returnCode ?? -1] ?? `code ${p.returnCode}`}`;
          sock.destroy();
          return;
        }
        this.#up = true;
        this.#pingOutstanding = false;
        this.#acksAtCheck = this.#acks;
        // checked every half keep-alive period (#keepaliveCheck)
        if (keepaliveS > 0) this.#keepalive = sharedKeepaliveTimer.set(() => this.#keepaliveCheck(sock), keepaliveS * 500);
        // What was not acknowledged on the last link goes first, in order, flagged as a duplicate.
        for (const frame of this.#inflight.frames()) {
          const again = Buffer.from(frame);
          again[0] = (again[0] as number) | 0x08;
          sock.write(again);
        }
        if (!p.sessionPresent) {
          this.#subscribeId = this.#nextId();
          sock.write(
            mqttPacket.generate({
              cmd: "subscribe",
              messageId: this.#subscribeId,
              subscriptions: [{ topic: commandFilter(this.#addr), qos: 1 }],
            }),
          );
        }
        this.#link?.({ up: true, sessionPresent: p.sessionPresent === true });
        return;
      }
      case "puback":
        this.#onPuback(p.messageId as number);
        return;
      case "publish": {
        if (p.qos === 1) sock.write(mqttPacket.generate({ cmd: "puback", messageId: p.messageId as number }));
        else if (p.qos === 2) sock.write(mqttPacket.generate({ cmd: "pubrec", messageId: p.messageId as number }));
        const name = this.#topics.command(p.topic);
        if (name === undefined) return;
        const payload = typeof p.payload === "string" ? Buffer.from(p.payload) : p.payload;
        this.#command?.(name, payload);
        return;
      }
      case "pubrel":
        sock.write(mqttPacket.generate({ cmd: "pubcomp", messageId: p.messageId as number }));
        return;
      case "suback":
        if (p.messageId === this.#subscribeId) this.#subscribeId = 0;
        if ((p.granted as unknown[]).includes(0x80)) this.#lastError = "subscribe failed: refused";
        return;
      case "pingresp":
        this.#pingOutstanding = false;
        this.#acks++;
        return;
      default:
        return;
    }
  }

  /**
   * Every half keep-alive period. A PINGREQ goes only when nothing was acknowledged since the last check
   * (MQTT 3.1.1 §3.1.2.10: "in the absence of sending any other Control Packets"): a PUBACK received
   * means the broker heard a PUBLISH of ours and the link carries both ways. With the broker acknowledging
   * promptly it then hears from the device at least every keep-alive period plus the shared timer's
   * lateness (up to 1 s; keepalive-timer.ts) — within the 1.5 periods it allows. A device publishing
   * every second thus sends no PINGREQ at all (MQTT.js too re-arms its ping on traffic); an idle one sends one
   * per period (its PINGRESP counts as an acknowledgement for the next check). No PINGRESP within a
   * keep-alive period (two checks): the link is dead even if the socket has not noticed.
   */
  #keepaliveCheck(sock: Socket): void {
    if (sock !== this.#sock) return;
    if (this.#pingOutstanding) {
      if (++this.#pingWaits < 2) return;
      this.#lastError = "keepalive timeout";
      sock.destroy();
      return;
    }
    if (this.#acks !== this.#acksAtCheck) {
      this.#acksAtCheck = this.#acks;
      return;
    }
    this.#pingOutstanding = true;
    this.#pingWaits = 0;
    sock.write(PINGREQ);
  }

  #onClose(sock: Socket): void {
    if (sock !== this.#sock) return;
    this.#detach();
    this.#onAllAcked = undefined;
    if (!this.#live) return;
    this.#live = false;
    const reason = this.#lastError;
    this.#lastError = "closed";
    this.#link?.({ up: false, reason });
  }

  /** Forget the current socket without a link event (a new connect() replaces it). */
  #drop(): void {
    this.#detach()?.destroy();
  }

  /** Stop the current socket's timers and forget it (its later events are ignored); returns it. */
  #detach(): Socket | undefined {
    const sock = this.#sock;
    this.#sock = undefined;
    this.#parser = undefined;
    this.#up = false;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    if (this.#keepalive !== undefined) sharedKeepaliveTimer.clear(this.#keepalive);
    this.#keepalive = undefined;
    return sock;
  }

  /** The next free packet identifier after the last one used (1 … 65535), or 0 when none is free. */
  #nextId(): number {
    for (let n = 0; n < 65535; n++) {
      this.#lastId = this.#lastId === 65535 ? 1 : this.#lastId + 1;
      if (!this.#inflight.has(this.#lastId) && this.#lastId !== this.#subscribeId) return this.#lastId;
    }
    return 0;
  }
}

const PINGREQ = Buffer.from([0xc0, 0x00]);
const DISCONNECT = Buffer.from([0xe0, 0x00]);
const CONNACK_REFUSALS: Record<number, string> = {
  1: "unacceptable protocol version",
  2: "identifier rejected",
  3: "server unavailable",
  4: "bad username or password",
  5: "not authorized",
};

/** A topic as a PUBLISH carries it: 2-byte big-endian length, then UTF-8. */
export function topicField(topic: string): Buffer {
  const utf8 = Buffer.from(topic, "utf8");
  const out = Buffer.allocUnsafeSlow(2 + utf8.length);
  out.writeUInt16BE(utf8.length, 0);
  utf8.copy(out, 2);
  return out;
}

/** One PUBLISH packet in one buffer: the bytes mqtt-packet's `generate` writes for the same packet. */
export function publishFrame(topic: Buffer, payload: Uint8Array, qos: 0 | 1, retain: boolean, id: number): Buffer {
  const remaining = topic.length + (qos > 0 ? 2 : 0) + payload.length;
  const lengthBytes = remaining < 0x80 ? 1 : remaining < 0x4000 ? 2 : remaining < 0x20_0000 ? 3 : 4;
  const out = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  out[0] = 0x30 | (qos << 1) | (retain ? 1 : 0);
  let at = 1;
  let n = remaining;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n > 0) byte |= 0x80;
    out[at++] = byte;
  } while (n > 0);
  for (let i = 0; i < topic.length; i++) out[at++] = topic[i] as number;
  if (qos > 0) {
    out[at++] = id >> 8;
    out[at++] = id & 0xff;
  }
  out.set(payload, at);
  return out;
}
