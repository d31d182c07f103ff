import { parseTopic } from "@esp-fleet/schemas/topics";
import type { Role, ServiceScope } from "./credentials.ts";
import type { AnonymousPolicy } from "./config.ts";

/** The identity a connection acts as, fixed at CONNECT. */
export type Principal =
  | { kind: "user"; username: string; role: Role; scopes: readonly ServiceScope[] }
  | { kind: "anonymous"; policy: Exclude<AnonymousPolicy, "off"> };

/**
 * Topic authorisation — pure functions of (principal, topic). The rules (DESIGN §2):
 * - a device publishes only its own `telemetry|status|meta|event|log|cmd/{name}/res` and subscribes only to its own `cmd/…`;
 * - services by scope: ingest reads every device channel (and may write the `json/…` mirror); sqal and api
 *   read everything and send commands; bridge acts for the devices it bridges (any device's channels and commands);
 *   every service may publish under `svc/{scope}/…`;
 * - a viewer (and `MQTT_ANONYMOUS=read`) subscribes to everything and publishes nothing;
 * - nobody but the broker publishes `$SYS/…`.
 */
export function canPublish(p: Principal, topic: string): boolean {
  if (topic.startsWith("$")) return false; // [MQTT-4.7.2-1] $-topics belong to the broker
  if (p.kind === "anonymous") return p.policy === "full";
  const parsed = parseTopic(topic);
  switch (p.role) {
    case "viewer":
      return false;
    case "device": {
      if (!parsed.ok || parsed.value.type !== "device") return false;
      const t = parsed.value;
      return t.dev === p.username && t.channel !== "cmd";
    }
    case "service": {
      if (!parsed.ok) return false;
      const t = parsed.value;
      return p.scopes.some((scope) => servicePublishes(scope, t));
    }
  }
}

type Parsed = Extract<ReturnType<typeof parseTopic>, { ok: true }>["value"];

function servicePublishes(scope: ServiceScope, t: Parsed): boolean {
  if (t.type === "svc") return t.service === scope;
  switch (scope) {
    case "ingest":
      return t.type === "json";
    case "sqal":
    case "api":
      return t.type === "device" && t.channel === "cmd";
    case "bridge":
      return t.type === "device" && t.channel !== "cmd";
  }
}

function hasWildcard(segment: string | undefined): boolean {
  return segment === undefined || segment === "+" || segment === "#";
}

/** `{site}/{kind}/{dev}/cmd/…` with a literal site, kind and device: the only filters a device may hold. */
function isOwnCommandFilter(filter: string, username: string): boolean {
  const s = filter.split("/");
  if (s.length < 5 || s.length > 6) return false;
  if (hasWildcard(s[0]) || hasWildcard(s[1]) || s[2] !== username || s[3] !== "cmd") return false;
  const name = s[4] ?? "";
  if (name.includes("#") && s.length !== 5) return false;
  return s.length === 5 || s[5] === "res" || s[5] === "#";
}

/** Is `filter` a command filter (of any device)? `+/+/+/cmd/+` or narrower. */
function isCommandFilter(filter: string): boolean {
  const s = filter.split("/");
  return (s.length === 5 || s.length === 6) && s[3] === "cmd" && !filter.startsWith("$");
}

export function canSubscribe(p: Principal, filter: string): boolean {
  if (p.kind === "anonymous") return true; // read and full both read
  switch (p.role) {
    case "viewer":
      return true;
    case "device":
      return isOwnCommandFilter(filter, p.username);
    case "service":
      return p.scopes.some((scope) =>
        scope === "bridge" ? isCommandFilter(filter) : !filter.startsWith("$SYS") || scope === "api",
      );
  }
}
