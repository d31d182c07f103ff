// Reads vitest's JSON report and prints `N passed, N failed, N skipped` (plus extra checks counted by
// .ci/run: typecheck and lint). Exits 1 when anything failed, or when the report is missing or empty.
import { readFileSync } from "node:fs";

const [file, extraPassed = "0", extraFailed = "0"] = process.argv.slice(2);
let passed = Number(extraPassed);
let failed = Number(extraFailed);
let skipped = 0;
let ok = true;
try {
  const report = JSON.parse(readFileSync(file, "utf8"));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A test file that failed to load has no tests but counts as a failure.
  for (const suite of report.testResults ?? []) {
    if (suite.status === "failed" && (suite.assertionResults ?? []).every((a) => a.status !== "failed")) failed += 1;
  }
  // Vitest also fails a run whose tests all passed when errors escaped them (unhandled rejections,
  // exceptions thrown after a test): that counts as one failure, so the line agrees with the exit code.
  if (report.success === false && failed === Number(extraFailed)) failed += 1;
  if ((report.numTotalTests ?? 0) === 0) ok = false;
} catch (e) {
  console.error(`cannot read vitest report ${file}: ${e.message}`);
  failed += 1;
  ok = false;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || !ok ? 1 : 0);
