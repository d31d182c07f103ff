/**
 * A bench child's sampling heap profile (diagnosis), from an environment variable
 * `<file>:<from s>:<to s>[:all]`: V8's sampling heap profile from <from> to <to> seconds after this call,
 * of what the young generation's collections did not free — objects still alive, and those that lived to
 * be promoted and were freed by a full collection — or with `all` of every allocation, written as a
 * .heapprofile (Chrome DevTools' Memory tab opens it). A bad value stops the child with exit code 2; a
 * profile that cannot be taken or written is reported on stderr and the child goes on (a diagnosis must not
 * stop the process under the bench).
 */
import { errorMessage } from "./errors.ts";

export async function heapSampleFromEnv(variable: string, who: string): Promise<void> {
  const value = process.env[variable];
  if (value === undefined) return;
  const [file, fromS, toS, what] = value.split(":") as [string, string | undefined, string | undefined, string | undefined];
  if (!file || !(Number(fromS) >= 0) || !(Number(toS) > Number(fromS)) || (what !== undefined && what !== "all")) {
    process.stderr.write(`${who}: ${variable} must be <file>:<from s>:<to s>[:all] with to > from ≥ 0, not "${value}"\n`);
    process.exit(2);
  }
  const { Session } = await import("node:inspector/promises");
  const { writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  const failed = (e: unknown) => process.stderr.write(`${who}: heap profile not written: ${errorMessage(e)}\n`);
  setTimeout(
    () => {
      session
        .post("HeapProfiler.startSampling", {
          samplingInterval: 16384,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: what === "all",
        })
        .catch(failed);
      setTimeout(
        () => {
          session
            .post("HeapProfiler.stopSampling")
            .then(({ profile }) => {
              writeFileSync(file, JSON.stringify(profile));
              process.stderr.write(`${who}: heap profile written to ${file}\n`);
            })
            .catch(failed);
        },
        (Number(toS) - Number(fromS)) * 1000,
      ).unref();
    },
    Number(fromS) * 1000,
  ).unref();
}
