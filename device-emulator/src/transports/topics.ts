import { commandTopic, deviceTopic, type DeviceChannel } from "@esp-fleet/schemas";
import type { DeviceAddressInfo, PublishChannel } from "../transport.ts";

/**
 * One device's MQTT topics, as both MQTT transports (mqtt.ts, session.ts) address them: the topic of each
 * publish channel (`cmd/{name}/res` included) and the name of a command addressed to this device.
 */
export class DeviceTopics {
  readonly byChannel: Readonly<Record<DeviceChannel, string>>;
  /** `{site}/{kind}/{dev}/cmd/` */
  readonly #cmdPrefix: string;

  constructor(addr: DeviceAddressInfo) {
    this.byChannel = {
      telemetry: deviceTopic(addr, "telemetry"),
      status: deviceTopic(addr, "status"),
      meta: deviceTopic(addr, "meta"),
      event: deviceTopic(addr, "event"),
      log: deviceTopic(addr, "log"),
    };
    this.#cmdPrefix = commandTopic(addr, "x").slice(0, -1);
  }

  /** True for a command reply channel (`cmd/{name}/res`), whose topic is built per publish. */
  static isReply(channel: PublishChannel): channel is `cmd/${string}/res` {
    return channel.length > 4 && channel.startsWith("cmd/");
  }

  /** The topic a publish on `channel` goes to. */
  topic(channel: PublishChannel): string {
    return DeviceTopics.isReply(channel) ? `${this.#cmdPrefix}${channel.slice(4)}` : this.byChannel[channel as DeviceChannel];
  }

  /** The command name of `topic` when it is `{site}/{kind}/{dev}/cmd/{name}` of this device, else undefined. */
  command(topic: string): string | undefined {
    if (!topic.startsWith(this.#cmdPrefix)) return undefined;
    const name = topic.slice(this.#cmdPrefix.length);
    return name.length === 0 || name.includes("/") ? undefined : name;
  }
}
