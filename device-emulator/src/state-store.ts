import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What a device keeps in flash across reboots: the boot counter (part of the `(dev, boot, seq)`
 * idempotency key — reusing one would make ingest drop new readings as duplicates) and the feeding
 * station's lot counter.
 */
export interface DeviceState {
  boot: number;
  lots: number;
}

export interface DeviceStateStore {
  load(dev: string): DeviceState;
  /** Durable when it returns (a crash right after must not reuse the boot counter). */
  save(dev: string, state: DeviceState): void;
}

export class MemoryStateStore implements DeviceStateStore {
  #map = new Map<string, DeviceState>();
  load(dev: string): DeviceState {
    const s = this.#map.get(dev);
    return s ? { ...s } : { boot: 0, lots: 0 };
  }
  save(dev: string, state: DeviceState): void {
    this.#map.set(dev, { ...state });
  }
}

/** One small JSON file per device under `dir` (written with write-then-rename). */
export class FileStateStore implements DeviceStateStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }
  load(dev: string): DeviceState {
    try {
      const raw = JSON.parse(readFileSync(join(this.dir, `${dev}.json`), "utf8")) as Partial<DeviceState>;
      return {
        boot: Number.isInteger(raw.boot) && (raw.boot as number) >= 0 ? (raw.boot as number) : 0,
        lots: Number.isInteger(raw.lots) && (raw.lots as number) >= 0 ? (raw.lots as number) : 0,
      };
    } catch {
      return { boot: 0, lots: 0 };
    }
  }
  save(dev: string, state: DeviceState): void {
    const path = join(this.dir, `${dev}.json`);
    writeFileSync(`${path}.tmp`, JSON.stringify(state));
    renameSync(`${path}.tmp`, path);
  }
}
