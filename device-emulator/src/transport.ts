/**
 * The one seam between device firmware and the outside world. The firmware core (`firmware.ts`) never
 * touches a socket, a serial port or a broker: it calls these methods, and the transport reports link
 * changes and incoming commands back. The same firmware therefore runs over MQTT (`transports/mqtt.ts`),
 * over a serial link (`@esp-fleet/hil`), and in tests over `transports/memory.ts` on a `ManualClock`.
 *
 * Contract, in the order things happen:
 * 1. The firmware registers its handlers once: `onLink(handler)`, `onCommand(handler)`.
 * 2. `connect({ will, keepaliveS })` starts ONE connection attempt. Its outcome arrives through the link
 *    handler: `{ up: true, sessionPresent }` once the peer accepted the session (MQTT: CONNACK 0), or
 *    `{ up: false, reason }` when the attempt failed or an established link dropped. The transport does
 *    NOT retry by itself: the firmware owns reconnection (exponential backoff with jitter) and calls
 *    `connect()` again. A later `connect()` carries a fresh will (new seq/ts); a transport that cannot
 *    change the will of a live session may keep the first one.
 * 3. `publish(channel, payload, opts)` hands over one message while the link is up. QoS 1 messages
 *    handed over must survive a link drop inside the transport (MQTT.js keeps unacknowledged QoS 1
 *    messages and resends them, in order, before anything newer after the reconnect). The firmware never
 *    publishes while the link is down — it buffers in its own bounded FIFO instead. The return value is
 *    ignored except that a rejected promise is counted as a publish error.
 * 4. Commands addressed to the device (`{site}/{kind}/{dev}/cmd/{name}`) arrive as
 *    `handler(name, payload)` with the raw CBOR bytes; the firmware validates them. A serial transport
 *    delivers the command frames it receives the same way.
 * 5. `close(true)` ends the session cleanly (MQTT DISCONNECT: the will is discarded — the firmware has
 *    already published `status: offline` itself); `close(false)` drops the link as a crash or power cut
 *    would (no DISCONNECT: the broker publishes the will). After `close`, no link event is reported for
 *    the closed session; `connect()` may be called again (emulated reboot). QoS 1 messages still
 *    unacknowledged when the session ends are gone with the device's RAM; a transport that knows how many
 *    resolves `close` with that number (the firmware counts them as `unacked`).
 *
 * Handlers are called synchronously from the transport's I/O callbacks and must not throw (the firmware
 * catches everything at its own boundary).
 */

/** Device → world channels. `cmd/{name}/res` carries a command reply. */
export type PublishChannel = "telemetry" | "status" | "meta" | "event" | "log" | `cmd/${string}/res`;

export interface PublishOptions {
  qos: 0 | 1;
  retain: boolean;
}

/** The last-will message the peer publishes if the link dies without a clean close. */
export interface WillMessage {
  channel: "status";
  payload: Uint8Array;
  qos: 0 | 1;
  retain: boolean;
}

export interface ConnectOptions {
  will: WillMessage;
  /** Keep-alive the transport should negotiate, seconds (MQTT keepalive; a serial link may ignore it). */
  keepaliveS: number;
}

export type LinkEvent =
  | { up: true; /** the peer still had this device's session (MQTT CONNACK session-present) */ sessionPresent: boolean }
  | { up: false; /** one line: "connection refused: not authorized", "closed", "timeout" … */ reason: string };

export type LinkHandler = (event: LinkEvent) => void;
export type CommandHandler = (name: string, payload: Uint8Array) => void;

export interface DeviceTransport {
  connect(opts: ConnectOptions): void;
  publish(channel: PublishChannel, payload: Uint8Array | string, opts: PublishOptions): void | Promise<void>;
  onCommand(handler: CommandHandler): void;
  onLink(handler: LinkHandler): void;
  close(clean: boolean): Promise<void | number>;
}

/** Who a transport is created for. `dev` is also the MQTT client id and username. */
export interface DeviceAddressInfo {
  site: string;
  kind: "sqal" | "fridge" | "gavage";
  dev: string;
}

/** The MQTT clients a device can run (`mqttTransportFactory`, transports/mqtt.ts). */
export const MQTT_CLIENT_KINDS = ["session", "mqttjs"] as const;
export type MqttClientKind = (typeof MQTT_CLIENT_KINDS)[number];

/** Builds the transport of one device (the fleet calls it once per device). */
export type TransportFactory = (device: DeviceAddressInfo) => DeviceTransport;
