// Placeholder until issue #8 lands: the command exists in `esp-fleet --help` but is not built yet.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write("esp-fleet: this command is not built yet (issue #8)\n");
  return 2;
}
