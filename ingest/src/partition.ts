import { SEGMENT_RE, filters } from "@esp-fleet/schemas";
import { ConfigError } from "@esp-fleet/common/errors";

/**
 * Which part of the topic space one ingest worker takes (docs/ingest.md, "Scale-out").
 * - `sites`: subscribe only to those sites' topics — the broker sends each worker only its share.
 * - `hash`: every worker subscribes to everything and stores the devices whose id hashes to its index
 *   (FNV-1a mod count); the others are acknowledged without storing. Costs N× the delivery bandwidth,
 *   needs no knowledge of the sites.
 * - `shareGroup`: MQTT 5 / broker-specific shared subscriptions (`$share/{group}/{filter}`); the broker
 *   balances. Aedes 1.x grants these but delivers nothing (DESIGN §9): use sites or hash there.
 */
export interface Partition {
  sites?: readonly string[];
  hash?: { index: number; count: number };
  shareGroup?: string;
}

/** The channels ingest stores. */
export const INGEST_CHANNELS = ["telemetry", "status", "meta", "event"] as const;

export function subscriptionFilters(p: Partition = {}): string[] {
  const sites = p.sites && p.sites.length > 0 ? p.sites : ["+"];
  const out: string[] = [];
  for (const site of sites) for (const ch of INGEST_CHANNELS) out.push(filters.channel(ch, "+", site));
  return p.shareGroup ? out.map((f) => `$share/${p.shareGroup}/${f}`) : out;
}

/** FNV-1a 32-bit of a device id. */
export function deviceHash(dev: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < dev.length; i++) {
    h ^= dev.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Whether this worker stores `dev` under `p`. */
export function ownsDevice(p: Partition, dev: string): boolean {
  if (!p.hash) return true;
  return deviceHash(dev) % p.hash.count === p.hash.index;
}

/** Parse `INGEST_SITES` (`LL,LS`) and `INGEST_PARTITION` (`index/count`, e.g. `0/4`). */
export function parsePartition(sites: string | undefined, hash: string | undefined, shareGroup: string | undefined): Partition {
  const p: Partition = {};
  if (sites) {
    const list = sites
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    for (const s of list)
      if (!SEGMENT_RE.test(s)) throw new ConfigError(`INGEST_SITES: ${JSON.stringify(s)} must match [A-Za-z0-9_-]+`);
    p.sites = list;
  }
  if (hash) {
    const m = /^(\d+)\/(\d+)$/.exec(hash.trim());
    const index = Number(m?.[1]);
    const count = Number(m?.[2]);
    if (!m || count < 1 || index >= count)
      throw new ConfigError(`INGEST_PARTITION=${JSON.stringify(hash)}: must be index/count with 0 <= index < count, e.g. 0/4`);
    p.hash = { index, count };
  }
  if (shareGroup) {
    if (!SEGMENT_RE.test(shareGroup))
      throw new ConfigError(`INGEST_SHARE_GROUP: ${JSON.stringify(shareGroup)} must match [A-Za-z0-9_-]+`);
    p.shareGroup = shareGroup;
  }
  return p;
}
