import { lookup } from "node:dns/promises";

export interface Discovered {
  url: string;
  /** How it was found: the explicit variable, a compose DNS name, or the localhost fallback. */
  source: "explicit" | "dns" | "localhost";
}

/**
 * Service discovery per DESIGN §6: an explicit URL wins; otherwise a compose service name that resolves
 * in DNS (`broker`, `db`); otherwise localhost.
 */
export async function discover(
  explicit: string | undefined,
  composeHost: string,
  build: (host: string) => string,
  resolve: (host: string) => Promise<unknown> = (h) => lookup(h),
): Promise<Discovered> {
  if (explicit) return { url: explicit, source: "explicit" };
  try {
    await Promise.race([
      resolve(composeHost),
      new Promise((_, rej) => setTimeout(() => rej(new Error("dns timeout")), 500).unref()),
    ]);
    return { url: build(composeHost), source: "dns" };
  } catch {
    return { url: build("localhost"), source: "localhost" };
  }
}

export const discoverMqttUrl = (explicit?: string) => discover(explicit, "broker", (host) => `mqtt://${host}:1883`);
