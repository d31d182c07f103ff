import { defineConfig } from "vitest/config";

// One run covers every package. Integration tests start real servers on ephemeral ports, so files run
// in separate processes, two at a time (this machine has 2 cores).
export default defineConfig({
  test: {
    include: ["*/src/**/*.test.ts", "*/test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "hil/firmware/**"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
  },
});
