import { acceleratedClock, systemClock } from "@esp-fleet/common/clock";
import { createLogger, type Logger } from "@esp-fleet/common/logger";
import { createRng } from "@esp-fleet/common/random";
import type { DeviceKind } from "@esp-fleet/schemas";
import { EmulatedDevice, type FirmwareOptions } from "@esp-fleet/device-emulator/firmware";
import { FIRMWARE_VERSION, HARDWARE } from "@esp-fleet/device-emulator/profiles";
import { Scheduler } from "@esp-fleet/device-emulator/scheduler";
import { FileStateStore, MemoryStateStore } from "@esp-fleet/device-emulator/state-store";
import { SerialDeviceTransport, type ByteLine } from "./device-transport.ts";
import { LineNoise, type NoiseOptions } from "./noise.ts";
import { closeSerialPort, openSerialPort, PacedWriter } from "./serial-port.ts";

export interface RunSerialDeviceOptions {
  /** serial port (or socat pty link) the device speaks on */
  path: string;
  /** line rate; also the pacing rate when `pacing` is on. Default 921600. */
  baud?: number;
  kind: DeviceKind;
  site: string;
  /** device id, e.g. ESP32_LL_01 */
  id: string;
  seed?: number | string;
  /** simulated time runs this many times faster than the wall clock. Default 1. */
  accel?: number;
  /** write at the real line rate (10 bits per byte) instead of as fast as the port takes bytes */
  pacing?: boolean;
  /** line noise injected on this (emulated) end, in both directions; `seed` makes it repeatable */
  noise?: NoiseOptions & { seed?: number | string };
  /** firmware options (interval, heartbeat, cycles, fault probability …) */
  firmware?: Partial<FirmwareOptions>;
  /** persist the boot counter here (default: in memory) */
  stateDir?: string;
  /** print the ESP32 boot-ROM banner as console text before the firmware starts. Default true. */
  bootBanner?: boolean;
  /** observe every message the firmware hands to the link (tests, latency benchmarks) */
  tap?: (channel: string, payload: Uint8Array | string) => void;
  log?: Logger;
}

export interface SerialDeviceHandle {
  device: EmulatedDevice;
  transport: SerialDeviceTransport;
  noise: { tx: LineNoise; rx: LineNoise };
  /** Clean stop: `status: offline`, then the port is closed. */
  stop(): Promise<void>;
  /** Power cut: the port closes with no goodbye (the bridge publishes the will). */
  kill(): Promise<void>;
}

const BOOT_BANNER =
  "ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n" +
  "configsip: 0, SPIWP:0xee\r\nmode:DIO, clock div:2\r\nload:0x3fff0030,len:1184\r\nentry 0x400805e4\r\n";

/**
 * Run one emulated device over the serial protocol on `path` — what `esp-fleet emulate --serial PATH`
 * does. The device's firmware core is the emulator's; only the transport differs.
 */
export async function runSerialDevice(opts: RunSerialDeviceOptions): Promise<SerialDeviceHandle> {
  const log = opts.log ?? createLogger("serial-device");
  const baud = opts.baud ?? 921600;
  const port = await openSerialPort(opts.path, baud);
  const noiseRng = createRng(opts.noise?.seed ?? `${opts.seed ?? 1}:${opts.id}:noise`);
  const noise = { tx: new LineNoise(noiseRng.fork("tx"), opts.noise), rx: new LineNoise(noiseRng.fork("rx"), opts.noise) };
  const raw = (b: Uint8Array) => {
    if (port.isOpen) port.write(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  };
  const paced = opts.pacing ? new PacedWriter(raw, baud, systemClock) : undefined;
  const line: ByteLine = {
    write: (b) => {
      const out = noise.tx.apply(b);
      if (paced) paced.write(out);
      else raw(out);
    },
    onData: (h) => port.on("data", (chunk: Buffer) => h(noise.rx.apply(chunk))),
  };
  port.on("error", (err) => log.warn({ err, path: opts.path }, "serial port error"));
  const caps = [
    ...HARDWARE[opts.kind].sensors.map((s) => s.name),
    "cmd:inspect",
    "cmd:fault",
    "cmd:config",
    "cmd:reboot",
    "cmd:status",
  ];
  const transport = new SerialDeviceTransport(
    { site: opts.site, kind: opts.kind, dev: opts.id },
    { line, clock: systemClock, fw: FIRMWARE_VERSION, caps, log },
  );
  if (opts.tap) {
    const tap = opts.tap;
    const publish = transport.publish.bind(transport);
    transport.publish = (channel, payload, o) => {
      tap(channel, payload);
      return publish(channel, payload, o);
    };
  }
  const accel = opts.accel ?? 1;
  const scheduler = new Scheduler(acceleratedClock(accel));
  const store = opts.stateDir ? new FileStateStore(opts.stateDir) : new MemoryStateStore();
  const device = new EmulatedDevice(
    { dev: opts.id, kind: opts.kind, site: opts.site },
    { scheduler, transport, store, seed: opts.seed ?? 1, options: { accel, ...opts.firmware } },
  );
  if (opts.bootBanner ?? true) line.write(new TextEncoder().encode(BOOT_BANNER));
  device.start();
  log.info(
    { path: opts.path, dev: opts.id, kind: opts.kind, baud, pacing: !!opts.pacing, noise: noise.tx.active },
    "serial device started",
  );
  const finish = async (how: "stop" | "kill") => {
    await (how === "stop" ? device.stop() : device.kill());
    // let the goodbye leave the UART before the port closes
    for (let i = 0; i < 50 && how === "stop" && (paced?.queued ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    if (how === "stop") await new Promise<void>((r) => port.drain(() => r()));
    paced?.stop();
    scheduler.stop();
    await closeSerialPort(port);
  };
  return { device, transport, noise, stop: () => finish("stop"), kill: () => finish("kill") };
}
