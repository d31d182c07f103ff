/**
 * Small, dependency-free helpers the deployment tests use to read docker-compose.yml, .env.example, the
 * Dockerfile, .dockerignore and PromQL the way Docker, Compose and Prometheus would.
 */

// ------------------------------------------------------------------------------------- interpolation

const REF_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;
const ESCAPED = "\u0000DOLLAR\u0000";

/** Every variable a Compose string refers to (`${A}`, `${A:-x}`, `${A:?msg}`, `$A`; `$$` is a literal `$`). */
export function variableRefs(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.replaceAll("$$", ESCAPED).matchAll(REF_RE)) out.add((m[1] ?? m[4])!);
  return out;
}

export class InterpolationError extends Error {}

/** Compose variable interpolation of one string. */
export function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text
    .replaceAll("$$", ESCAPED)
    .replace(
      REF_RE,
      (_all, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
        const name = (braced ?? bare)!;
        const value = vars[name];
        const unset = value === undefined;
        const empty = unset || value === "";
        switch (op) {
          case undefined:
            return value ?? "";
          case ":-":
            return empty ? (arg ?? "") : value!;
          case "-":
            return unset ? (arg ?? "") : value!;
          case ":?":
          case "?":
            if (op === ":?" ? empty : unset)
              throw new InterpolationError(`required variable ${name} is missing a value: ${arg ?? ""}`);
            return value!;
          case ":+":
            return empty ? "" : (arg ?? "");
          case "+":
            return unset ? "" : (arg ?? "");
          default:
            throw new InterpolationError(`unsupported interpolation operator ${op} in ${text}`);
        }
      },
    )
    .replaceAll(ESCAPED, "$");
}

/** Interpolate every string value of a parsed YAML tree (keys are left alone, as Compose does). */
export function interpolateTree<T>(node: T, vars: Record<string, string | undefined>): T {
  if (typeof node === "string") return interpolate(node, vars) as T;
  if (Array.isArray(node)) return node.map((n: unknown) => interpolateTree(n, vars)) as T;
  if (node && typeof node === "object") {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, vars)])) as T;
  }
  return node;
}

// ------------------------------------------------------------------------------------------- .env files

export interface EnvEntry {
  key: string;
  value: string;
  line: number;
}

/** `KEY=value` lines; `#` comments and blank lines skipped; surrounding quotes removed. */
export function parseEnvFile(text: string): EnvEntry[] {
  const out: EnvEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`.env line ${i + 1} is not KEY=value: ${raw}`);
    out.push({ key: m[1]!, value: m[2]!.replace(/^(["'])(.*)\1$/, "$2"), line: i + 1 });
  });
  return out;
}

// ------------------------------------------------------------------------------------------- Dockerfile

export interface DockerInstruction {
  /** upper-cased instruction keyword */
  op: string;
  args: string;
  /** index of the build stage (FROM) it belongs to */
  stage: number;
}

/** Dockerfile instructions, continuation lines joined, comments and parser directives skipped. */
export function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  let stage = -1;
  let pending = "";
  for (const raw of text.split("\n")) {
    const trimmed = raw.trim();
    if (pending === "" && (trimmed === "" || trimmed.startsWith("#"))) continue;
    if (pending !== "" && trimmed.startsWith("#")) continue;
    if (trimmed.endsWith("\\")) {
      pending += `${trimmed.slice(0, -1)} `;
      continue;
    }
    const full = (pending + trimmed).trim();
    pending = "";
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    if (op === "FROM") stage++;
    out.push({ op, args: m[2]!, stage });
  }
  return out;
}

// ------------------------------------------------------------------------------------------ .dockerignore

/** Does a .dockerignore pattern list exclude `path` (Go filepath.Match plus `**`, `!` exceptions)? */
export function dockerIgnored(patterns: string[], path: string): boolean {
  let ignored = false;
  for (const rawPattern of patterns) {
    const line = rawPattern.trim();
    if (line === "" || line.startsWith("#")) continue;
    const negate = line.startsWith("!");
    const pattern = (negate ? line.slice(1) : line).replace(/^\/+/, "").replace(/\/+$/, "");
    const re = new RegExp(`^${globToRegex(pattern)}(/.*)?$`);
    if (re.test(path)) ignored = !negate;
  }
  return ignored;
}

function globToRegex(glob: string): string {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      // `**/` matches zero or more directories
      re += glob[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += glob[i + 2] === "/" ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return re;
}

// ----------------------------------------------------------------------------------------------- PromQL

const PROMQL_KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "bool",
  "and",
  "or",
  "unless",
  "inf",
  "nan",
]);

/** The metric names a PromQL expression selects (functions, keywords, labels, durations and strings removed). */
export function promqlMetricNames(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\]|\\.)*'/g, "''")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, " ");
  s = s.replace(/\b\d+(\.\d+)?(e[+-]?\d+)?(ms|s|m|h|d|w|y)?\b/gi, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = s.slice(m.index + m[0].length).trimStart();
    if (after.startsWith("(")) continue; // a function or aggregation
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** `name_bucket` / `name_sum` / `name_count` come from a histogram or summary called `name`. */
export function metricBaseNames(name: string): string[] {
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m ? [name, m[1]!] : [name];
}
