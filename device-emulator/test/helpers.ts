import { ManualClock } from "@esp-fleet/common/clock";
import {
  commandReplyTopic,
  decodeMessage,
  deviceTopic,
  type DeviceAddress,
  type DeviceChannel,
  type DeviceKind,
} from "@esp-fleet/schemas";
import { EmulatedDevice, type FirmwareOptions } from "../src/firmware.ts";
import { Scheduler } from "../src/scheduler.ts";
import { MemoryStateStore } from "../src/state-store.ts";
import { MemoryTransport, type RecordedPublish } from "../src/transports/memory.ts";

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

export interface RigOptions {
  site?: string;
  dev?: string;
  seed?: string | number;
  /** Firmware options, passed as given (the firmware's defaults fill the rest). */
  options?: Partial<FirmwareOptions>;
  mode?: "accept" | "manual" | "refuse";
  /** The manual clock's start (default 2026-01-01T00:00:00Z). */
  startMs?: number;
}

/** One emulated device on a manual clock and a memory transport; `take()` decodes what it published. */
export function deviceRig(kind: DeviceKind, o: RigOptions = {}) {
  const clock = new ManualClock(o.startMs ?? 1_767_225_600_000);
  const scheduler = new Scheduler(clock);
  const transport = new MemoryTransport(o.mode ?? "manual");
  const store = new MemoryStateStore();
  const dev = o.dev ?? (kind === "sqal" ? "ESP32_LL_01" : kind === "fridge" ? "FRIDGE_LL_01" : "GAVAGE_LL_01");
  const addr = { site: o.site ?? "LL", kind, dev };
  const device = new EmulatedDevice(addr, { scheduler, transport, store, seed: o.seed ?? 42, options: o.options ?? {} });
  const take = (): Wire[] => transport.take().map((p) => wire(addr, p));
  return { clock, scheduler, transport, store, device, addr, take };
}
