// Placeholder until issue #6 lands: the command exists in `esp-fleet --help` but is not built yet.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write("esp-fleet: this command is not built yet (issue #6)\n");
  return 2;
}
