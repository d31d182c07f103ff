import { z } from "zod";
import { DeviceKindSchema, SegmentSchema } from "@esp-fleet/schemas";

/**
 * HIL scenario files (YAML). A scenario drives one device under test — emulated over MQTT, emulated
 * over a virtual serial cable through the bridge, or a real board on a serial port — through steps.
 * Strings in topics, commands and `where` values may use `{dev}`, `{site}`, `{kind}`, `{lot}`.
 */
const seconds = z.number().positive().max(3600);

/** A value predicate: a literal (equality) or an operator object. */
export const MatcherSchema = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.null(),
  z
    .object({
      eq: z.unknown().optional(),
      ne: z.unknown().optional(),
      gte: z.number().optional(),
      lte: z.number().optional(),
      in: z.array(z.unknown()).optional(),
      exists: z.boolean().optional(),
    })
    .strict(),
]);
export type Matcher = z.infer<typeof MatcherSchema>;
/** `where`: dotted paths into the decoded message → matchers; all must hold. */
const WhereSchema = z.record(z.string(), MatcherSchema).default({});

export const StepSchema = z.union([
  z
    .object({
      restart: z
        .object({ clean: z.boolean().default(true) })
        .strict()
        .describe("power-cycle the device (emulated: restart it; real: reboot command)"),
    })
    .strict(),
  z.object({ wait_online: z.object({ within_s: seconds.default(15) }).strict() }).strict(),
  z
    .object({
      command: z
        .object({
          name: SegmentSchema,
          args: z.record(z.string(), z.unknown()).default({}),
          expect_ok: z.boolean().default(true).describe("wait for the reply and require ok = expect_ok"),
          within_s: seconds.default(10),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      inject_fault: z
        .object({ fault: z.string(), cycles: z.number().int().positive().optional(), within_s: seconds.default(10) })
        .strict(),
    })
    .strict(),
  z
    .object({
      expect: z
        .object({
          topic: z.string().describe("MQTT filter (+ and # allowed)"),
          where: WhereSchema,
          count: z.number().int().positive().default(1),
          within_s: seconds.default(10),
          since: z
            .enum(["step", "previous", "scenario", "restart"])
            .default("step")
            .describe(
              "count messages from the start of this step, of the previous step (e.g. the command that causes them), of the scenario, or of the last restart",
            ),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      expect_rows: z
        .object({
          table: z.string().regex(/^[a-z_][a-z0-9_]*$/),
          where: z.record(z.string().regex(/^[a-z_][a-z0-9_]*$/), z.union([z.string(), z.number(), z.boolean()])).default({}),
          min: z.number().int().nonnegative().optional(),
          equals_device_readings: z
            .boolean()
            .default(false)
            .describe("row count = readings the device produced (no loss, no duplicate)"),
          within_s: seconds.default(15),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      link_down: z.object({ for_s: seconds }).strict().describe("cut the serial link (bridge stopped), then restore it"),
    })
    .strict(),
  z.object({ sleep: z.object({ s: seconds }).strict() }).strict(),
]);
export type Step = z.infer<typeof StepSchema>;

export const ScenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    device: z
      .object({
        mode: z.enum(["serial", "mqtt", "port"]).default("serial"),
        kind: DeviceKindSchema,
        site: SegmentSchema.default("LL"),
        id: SegmentSchema.optional(),
        seed: z.union([z.number(), z.string()]).default(1),
        accel: z.number().min(1).max(86_400).default(1),
        interval_ms: z.number().int().min(20).default(200),
        fault_prob: z.number().min(0).max(1).default(0),
        cycles: z.number().int().nonnegative().default(0).describe("stop measuring after this many readings (0 = never)"),
        pacing: z.boolean().default(false),
        noise: z
          .object({ bit_error_rate: z.number().min(0).max(0.01).default(0), burst_prob: z.number().min(0).max(1).default(0) })
          .strict()
          .optional(),
        port: z.string().optional().describe("mode port: the real board's serial port (or --port)"),
      })
      .strict(),
    vars: z.record(z.string(), z.string()).default({}),
    timeout_s: seconds.default(120),
    steps: z.array(StepSchema).min(1),
  })
  .strict();
export type Scenario = z.infer<typeof ScenarioSchema>;

export function stepName(step: Step): string {
  return Object.keys(step)[0] as string;
}
