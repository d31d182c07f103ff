import { commandReplyTopic, decodeMessage, deviceTopic, type DeviceAddress, type DeviceChannel } from "@esp-fleet/schemas";
import type { RecordedPublish } from "../src/transports/memory.ts";

export interface Wire {
  topic: string;
  qos: 0 | 1;
  retain: boolean;
  schema: string;
  msg: Record<string, unknown>;
}

/** Turn a recorded publish into what went over the wire, decoded by the contract's decoder (must pass). */
export function wire(addr: DeviceAddress, p: RecordedPublish): Wire {
  const topic = p.channel.startsWith("cmd/")
    ? commandReplyTopic(addr, p.channel.split("/")[1] as string)
    : deviceTopic(addr, p.channel as DeviceChannel);
  const bytes = typeof p.payload === "string" ? Buffer.from(p.payload, "utf8") : p.payload;
  const d = decodeMessage(topic, bytes);
  if (!d.ok) throw new Error(`${topic}: ${d.error.stage}: ${d.error.error}`);
  const msg = (typeof d.value.message === "string" ? { text: d.value.message } : d.value.message) as Record<string, unknown>;
  return { topic, qos: p.qos, retain: p.retain, schema: d.value.schema, msg };
}
