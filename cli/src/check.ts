// Placeholder until issue #7 lands.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write("esp-fleet: check is not built yet (issue #7)\n");
  return 2;
}
