import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A virtual serial cable: `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B` in a temp dir (DESIGN §9:
 * always `link=` paths, raw + echo=0 mandatory). `close()` kills socat and removes the dir.
 */
export interface PtyPair {
  a: string;
  b: string;
  process: ChildProcess;
  close(): Promise<void>;
}

export async function openPtyPair(timeoutMs = 5000): Promise<PtyPair> {
  const dir = mkdtempSync(join(tmpdir(), "hil-pty-"));
  const a = join(dir, "a");
  const b = join(dir, "b");
  const proc = spawn("socat", [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: "ignore" });
  let exited = false;
  proc.on("exit", () => (exited = true));
  const deadline = Date.now() + timeoutMs;
  while (!(existsSync(a) && existsSync(b))) {
    if (exited || Date.now() > deadline) {
      proc.kill();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(
        exited ? "socat exited before creating the pty pair (is socat installed?)" : "timed out waiting for socat's pty links",
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    a,
    b,
    process: proc,
    async close() {
      if (!exited) {
        const gone = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** True when socat can be run (tests outside CI skip without it). */
export function hasSocat(): boolean {
  return ["/usr/bin/socat", "/usr/local/bin/socat", "/bin/socat"].some((p) => existsSync(p));
}
