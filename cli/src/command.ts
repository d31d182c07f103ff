/**
 * A subcommand module: `run(argv)` parses its own arguments (with its own `--help`) and resolves to the
 * process exit code. Modules are imported lazily so `decode` does not load the broker.
 */
export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<CommandModule>;
}
