import { z } from "zod";
import { randomUUID } from "node:crypto";
import type { Logger } from "@esp-fleet/common/logger";
import { BadInputError, NotFoundError, errorMessage } from "@esp-fleet/common/errors";
import { DEVICE_KINDS, SegmentSchema, formatIssues } from "@esp-fleet/schemas";
import { fleetSpecs, startFleet, type Fleet, type FleetStats } from "@esp-fleet/device-emulator";

/**
 * `POST /api/v1/simulations`: start an emulated fleet (the emulator package's `startFleet`) against
 * the broker this service uses. Bounds from the predecessor: cycles 1–10000, interval 1–3600 s,
 * fault probability 0–1.
 */
export const SimulationRequestSchema = z
  .object({
    devices: z.number().int().min(1).max(1000).default(3).describe("number of emulated devices"),
    kinds: z
      .array(z.enum(DEVICE_KINDS))
      .min(1)
      .max(3)
      .default(["sqal", "fridge", "gavage"])
      .describe("device kinds, round-robin"),
    sites: z
      .array(SegmentSchema)
      .min(1)
      .max(16)
      .default(["SIM"])
      .describe("sites, round-robin (default SIM, so simulated devices never share ids with the running fleet)"),
    cycles: z.number().int().min(1).max(10_000).default(100).describe("readings per device, then the simulation ends"),
    interval: z.number().min(1).max(3600).default(60).describe("simulated seconds between readings"),
    fault_prob: z.number().min(0).max(1).default(0.1).describe("fridge fault probability per reading"),
    accel: z.number().min(1).max(86_400).default(1).describe("time acceleration"),
    seed: z.union([z.number().int(), z.string().max(64)]).optional(),
  })
  .strict()
  .refine((b) => (b.interval * 1000) / b.accel >= 10, {
    message: "interval / accel must leave at least 10 ms of wall time between readings",
    path: ["interval"],
  });
export type SimulationRequest = z.infer<typeof SimulationRequestSchema>;

export interface SimulationView {
  id: string;
  status: "running" | "done" | "stopped" | "failed";
  request: SimulationRequest;
  started_at: string;
  finished_at: string | null;
  error: string | null;
  stats: FleetStats | null;
}

interface Entry {
  view: SimulationView;
  fleet?: Fleet;
}

export class SimulationManager {
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger;

  constructor(
    readonly mqttUrl: string,
    logger: Logger,
    readonly opts: {
      maxRunning?: number;
      /** Device passwords for a broker that authenticates devices: a map / function, or a `{dev}` pattern. */
      credentials?: Record<string, string> | ((dev: string) => string | undefined);
      passwordPattern?: string;
      /**
       * Called with the device ids a simulation is about to run, before they connect; returns their
       * passwords (the all-in-one provisions them on its broker). Wins over `credentials`.
       */
      provision?: (devs: string[]) => Promise<Record<string, string>>;
      /** Finished simulations kept for GET (default 50). */
      keep?: number;
    } = {},
  ) {
    this.#log = logger.child({ component: "simulations" });
  }

  /** Validate and start; throws BadInputError with the reason. */
  async start(body: unknown): Promise<SimulationView> {
    const parsed = SimulationRequestSchema.safeParse(body ?? {});
    if (!parsed.success) throw new BadInputError(formatIssues(parsed.error));
    const req = parsed.data;
    const running = [...this.#entries.values()].filter((e) => e.view.status === "running").length;
    if (running >= (this.opts.maxRunning ?? 4))
      throw new BadInputError(`${running} simulations already running (at most ${this.opts.maxRunning ?? 4})`);
    const id = randomUUID();
    const view: SimulationView = {
      id,
      status: "running",
      request: req,
      started_at: new Date().toISOString(),
      finished_at: null,
      error: null,
      stats: null,
    };
    const entry: Entry = { view };
    this.#entries.set(id, entry);
    this.#prune();
    try {
      const specs = fleetSpecs(req.devices, req.kinds, req.sites);
      const provisioned = this.opts.provision ? await this.opts.provision(specs.map((d) => d.dev)) : undefined;
      entry.fleet = await startFleet({
        url: this.mqttUrl,
        specs,
        cycles: req.cycles,
        intervalMs: (req.interval * 1000) / req.accel,
        faultProb: req.fault_prob,
        accel: req.accel,
        seed: req.seed ?? id,
        logger: this.#log,
        ...(this.opts.passwordPattern ? { passwordPattern: this.opts.passwordPattern } : {}),
        ...(provisioned ? { credentials: provisioned } : this.opts.credentials ? { credentials: this.opts.credentials } : {}),
      });
    } catch (e) {
      view.status = "failed";
      view.error = errorMessage(e);
      view.finished_at = new Date().toISOString();
      throw new BadInputError(`cannot start the simulation: ${view.error}`);
    }
    const fleet = entry.fleet;
    void fleet.done.then(async () => {
      if (view.status !== "running") return;
      view.stats = fleet.stats();
      await fleet.stop().catch((err: unknown) => this.#log.warn({ err, id }, "fleet stop failed"));
      view.status = "done";
      view.finished_at = new Date().toISOString();
      this.#log.info({ id }, "simulation done");
    });
    this.#log.info({ id, devices: req.devices, cycles: req.cycles }, "simulation started");
    return this.get(id);
  }

  get(id: string): SimulationView {
    const e = this.#entries.get(id);
    if (!e) throw new NotFoundError(`simulation ${id} not found`);
    if (e.fleet && e.view.status === "running") e.view.stats = e.fleet.stats();
    return structuredClone(e.view);
  }

  list(): SimulationView[] {
    return [...this.#entries.keys()].map((id) => this.get(id));
  }

  async stop(id: string): Promise<SimulationView> {
    const e = this.#entries.get(id);
    if (!e) throw new NotFoundError(`simulation ${id} not found`);
    if (e.view.status === "running" && e.fleet) {
      e.view.stats = e.fleet.stats();
      e.view.status = "stopped";
      e.view.finished_at = new Date().toISOString();
      await e.fleet.stop();
    }
    return this.get(id);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#entries.keys()].map((id) => this.stop(id).catch(() => undefined)));
  }

  #prune(): void {
    const keep = this.opts.keep ?? 50;
    for (const [id, e] of this.#entries) {
      if (this.#entries.size <= keep) break;
      if (e.view.status !== "running") this.#entries.delete(id);
    }
  }
}
