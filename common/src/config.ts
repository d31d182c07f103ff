import { z } from "zod";
import { ConfigError } from "./errors.ts";

/**
 * Environment configuration. Each service declares one zod object whose keys are the environment
 * variable names, every field `.describe()`d with a default. `loadConfig` validates once, freezes, and on
 * a bad value throws a ConfigError naming the variable — before any connection is made.
 * `configDocs` renders the table the README carries (a test keeps it in sync).
 */
export type EnvSchema = z.ZodObject<Record<string, z.ZodType>>;

export function loadConfig<S extends EnvSchema>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): Readonly<z.infer<S>> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    // An empty variable counts as unset, as in most shells' `FOO= cmd`.
    input[key] = value === "" ? undefined : value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? "?");
      return `${variable}=${JSON.stringify(input[variable] ?? "")}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration — ${lines.join("; ")}`, { issues: lines });
  }
  return Object.freeze(parsed.data);
}

/** Reusable env field builders (strings from the environment coerced to typed values). */
export const env = {
  port: (def: number, description: string) =>
    z.coerce
      .number()
      .int()
      .min(0, "must be a port number 0-65535")
      .max(65535, "must be a port number 0-65535")
      .default(def)
      .describe(description),
  int: (def: number, min: number, max: number, description: string) =>
    z.coerce.number().int().min(min).max(max).default(def).describe(description),
  number: (def: number, min: number, max: number, description: string) =>
    z.coerce.number().min(min).max(max).default(def).describe(description),
  string: (def: string, description: string) => z.string().default(def).describe(description),
  optionalString: (description: string) => z.string().optional().describe(description),
  url: (description: string) =>
    z
      .string()
      .refine((v) => URL.canParse(v), "must be a URL such as mqtt://host:1883 or postgres://user:pass@host/db")
      .optional()
      .describe(description),
  bool: (def: boolean, description: string) =>
    z
      .enum(["1", "0", "true", "false", "on", "off", "yes", "no"], { message: "must be one of on/off, true/false, 1/0" })
      .default(def ? "on" : "off")
      .transform((v) => ["1", "true", "on", "yes"].includes(v))
      .describe(description),
  enumOf: <T extends readonly [string, ...string[]]>(values: T, def: T[number], description: string) =>
    z
      .enum(values)
      .default(def as never)
      .describe(description),
  logLevel: () =>
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info").describe("pino log level"),
};

export interface ConfigDocRow {
  variable: string;
  default: string;
  description: string;
}

/** Rows describing every variable of a schema, for the README's configuration table. */
export function configDocs(schema: EnvSchema): ConfigDocRow[] {
  return Object.entries(schema.shape).map(([variable, field]) => {
    const json = z.toJSONSchema(field as z.ZodType, { io: "input", unrepresentable: "any" }) as {
      default?: unknown;
      description?: string;
    };
    return {
      variable,
      default: json.default === undefined ? "" : String(json.default),
      description: field.description ?? json.description ?? "",
    };
  });
}
