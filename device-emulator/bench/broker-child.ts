/**
 * An in-memory Aedes broker (with the broker package's in-memory backend — retained messages indexed by
 * topic level, see broker/src/retained-index.ts) in its own process (so the emulator's CPU and memory are measured
 * separately). Prints `READY <port>` on stdout; then, every second, `STATS <json>` with its own CPU time
 * and RSS. Stops on SIGTERM. Usage: tsx device-emulator/bench/broker-child.ts [port]
 */
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import { createBackend } from "@esp-fleet/broker/persistence";
import { silentLogger } from "@esp-fleet/common/logger";

const backend = await createBackend(undefined, silentLogger());
const aedes = await Aedes.createBroker({
  drainTimeout: 5000,
  concurrency: 1000,
  persistence: backend.persistence as never,
});
const server = createServer(aedes.handle);
const port = Number(process.argv[2] ?? 0);
await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
let clients = 0;
aedes.on("client", () => clients++);
aedes.on("clientDisconnect", () => clients--);
process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
setInterval(() => {
  const u = process.cpuUsage();
  process.stdout.write(`STATS ${JSON.stringify({ cpuUs: u.user + u.system, rss: process.memoryUsage().rss, clients })}\n`);
}, 1000).unref();
const stop = () => {
  aedes.close(() => server.close(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
