import type { Command } from "commander";
import type { Logger } from "./logger.ts";

/**
 * Parse a subcommand's arguments without letting commander exit the process. Returns the exit code
 * when parsing ended the command (`--help` → 0, a usage error → 2, already reported on stderr), or
 * undefined when the command should run.
 */
export function parseArgs(program: Command, argv: string[]): number | undefined {
  program.exitOverride().configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv, { from: "user" });
    return undefined;
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (code === undefined) throw e;
    return code === 0 ? 0 : 2;
  }
}

/**
 * Resolve on the first SIGINT or SIGTERM (with the signal's name), so a long-running command can shut
 * down cleanly. A second Ctrl-C while shutting down exits at once (code 130).
 */
export function untilShutdownSignal(logger?: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      logger?.info({ signal }, "shutting down (Ctrl-C again to force)");
      process.once("SIGINT", () => process.exit(130));
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
