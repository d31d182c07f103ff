/**
 * An in-memory Aedes broker (with the broker package's in-memory backend — retained messages indexed by
 * topic level, see broker/src/retained-index.ts — and its router fixes, PUBLISH/PUBACK fast path, offline-queue limit and throughput settings, below, as
 * `esp-fleet broker` installs them; no authentication) in its own process (so the emulator's CPU and memory are measured
 * separately). Prints `READY <port>` on stdout; then, every second, `STATS <json>` with its own CPU time,
 * RSS, clients, routing backlog, routings deferred by the recursion guard (total), the second's worst event-loop delay and accept → CONNACK time, its GC pause time, worst single GC pause and its kind (common/src/gc-watch.ts), the JS heap in use, the largest socket write buffer, the number of sockets waiting for 'drain' and the deliveries that waited for one in the second, and (totals) the deliveries held and the sessions disconnected because a session held nearly all packet identifiers (broker/src/packet-ids.ts), the messages the offline-queue limit dropped (total), and with BENCH_WATCH_SESSION=<client id> how many messages that persistent session's queue holds (sent and not acknowledged, or not sent yet). Stops on SIGTERM. Usage: [MQTT_CONCURRENCY=1000] [MQTT_ACCEPT_HANDLES=64] [MQTT_DRAIN_TIMEOUT_MS=5000] [MQTT_WRITE_HIGH_WATER_KB=512] [MQTT_PROMPT_DELIVERY=false] [BENCH_WATCH_SESSION=id] [BENCH_HEAP_SAMPLE=<file>:<from s>:<to s>[:all], below] tsx device-emulator/bench/broker-child.ts [port]
 */
// first, as in `esp-fleet broker`: mqtt-packet with quiet loggers (common/src/quiet-debug.ts)
import "@esp-fleet/common/quiet-debug";
// one write() per MQTT packet (common/src/packet-writes.ts)
import "@esp-fleet/common/packet-writes";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Aedes } from "aedes";
import { coalesceWrites, countDrainWaits, raiseWriteHighWater } from "@esp-fleet/broker/coalesce";
import { acceptCopies } from "@esp-fleet/broker/accept-copies";
import { installFastPublish, type PacketParser } from "@esp-fleet/broker/fast-publish";
import { LISTEN_BACKLOG } from "@esp-fleet/broker/listeners";
import { installRouterFixes } from "@esp-fleet/broker/router-fixes";
import { installBatchedReplay } from "@esp-fleet/broker/replay";
import { installPromptDelivery } from "@esp-fleet/broker/deliver";
import { createIdentifierGate } from "@esp-fleet/broker/packet-ids";
import { connectedTo, createBackend, limitOfflineQueues } from "@esp-fleet/broker/persistence";
import { disableHighWaterDedupe, isDuplicate } from "@esp-fleet/broker/dedupe";
import { silentLogger } from "@esp-fleet/common/logger";
import { watchGc } from "@esp-fleet/common/gc-watch";
import { heapSampleFromEnv } from "@esp-fleet/common/heap-sample";

const backend = await createBackend(undefined, silentLogger());
let heldForIds = 0;
let idTimeouts = 0;
const idGate =
  backend.idsInUse &&
  createIdentifierGate(backend.idsInUse, {
    holdTimeoutMs: Number(process.env.MQTT_DRAIN_TIMEOUT_MS ?? 5000),
    onHold: () => heldForIds++,
    onTimeout: () => idTimeouts++,
  });
const aedes = await Aedes.createBroker({
  drainTimeout: Number(process.env.MQTT_DRAIN_TIMEOUT_MS ?? 5000),
  concurrency: Number(process.env.MQTT_CONCURRENCY ?? 1000),
  persistence: backend.persistence as never,
  // exact duplicate suppression, as `esp-fleet broker` has it: Aedes's own drops a message overtaken in
  // routing (broker/src/dedupe.ts, docs/broker.md "Duplicate suppression")
  preConnect: (client, _packet, callback) => {
    disableHighWaterDedupe(client);
    // as `esp-fleet broker`: Aedes's delivery by the same steps with the in-memory queue's checks, and the
    // identifier gate (broker/src/packet-ids.ts); deliveries free their routing slot when written
    // (broker/src/deliver.ts) with MQTT_PROMPT_DELIVERY=true
    const prompt = process.env.MQTT_PROMPT_DELIVERY === "true";
    if (idGate) idGate.install(client, { prompt });
    else if (prompt) installPromptDelivery(client);
    callback(null, true);
  },
  authorizeForward: (client, packet) => (isDuplicate(client, packet) ? null : packet),
});
// The broker package's fixes to Aedes's router, as `esp-fleet broker` installs them (broker/src/router-fixes.ts):
// the recursion guard, an O(1) routing backlog and the topic-match cache.
let deferred = 0;
installRouterFixes(aedes, { cacheMatches: true, onDefer: () => deferred++ });
// the offline-queue limit, as `esp-fleet broker` installs it by default (broker/src/persistence.ts): every
// message for a persistent subscriber passes through it. The broker's limit for a service account's session
// (MQTT_MAX_QUEUED_MESSAGES_SERVICE, 200,000) for every session: with no authentication here ingest is not
// known as one, and the only persistent subscriber here is ingest
let offlineDropped = 0;
limitOfflineQueues(
  backend.persistence,
  {
    limitFor: () => 200_000,
    anyLimit: true,
    isConnectedHere: connectedTo(aedes),
    onDrop: () => offlineDropped++,
  },
  backend.queueLength,
);
// a returning persistent session's queue in batches (broker/src/replay.ts)
installBatchedReplay(
  aedes,
  backend.persistence,
  backend.idsInUse && idGate ? { standing: backend.idsInUse.standing, room: idGate.room } : {},
);
const mq = (aedes as unknown as { mq: { length: number } }).mq;
// accept → CONNACK time, worst per second: what a connecting device waits for (its connect timeout)
const acceptedAt = new WeakMap<object, number>();
const sockets = new Set<Socket>();
// as `esp-fleet broker` has it by default (broker/src/config.ts); 16 = Node's own mark
const writeHighWaterKb = Number(process.env.MQTT_WRITE_HIGH_WATER_KB ?? 512);
let drainWaits = 0;
let connackMsMax = 0;
const onConnection = (socket: Socket) => {
  acceptedAt.set(socket, performance.now());
  sockets.add(socket);
  socket.once("close", () => sockets.delete(socket));
  // one writev per socket per event-loop turn, and the write high-water mark, as the broker has them
  const client = aedes.handle(raiseWriteHighWater(coalesceWrites(socket), writeHighWaterKb * 1024));
  // whole PUBLISH and PUBACK packets read directly, as the broker does (broker/src/fast-publish.ts)
  installFastPublish((client as unknown as { _parser: PacketParser })._parser);
};
const server = createServer(onConnection);
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const gc = watchGc();
const port = Number(process.argv[2] ?? 0);
await new Promise<void>((resolve) => server.listen({ port, host: "127.0.0.1", backlog: LISTEN_BACKLOG }, resolve));
// and its listening descriptors (MQTT_ACCEPT_HANDLES, 64 as the broker's default): that many accepts per loop
// iteration, not 1
const extraListeners = await acceptCopies(
  server,
  Number(process.env.MQTT_ACCEPT_HANDLES ?? 64) - 1,
  LISTEN_BACKLOG,
  onConnection,
);
let clients = 0;
aedes.on("client", (client) => {
  clients++;
  countDrainWaits(client, () => drainWaits++);
  const t = acceptedAt.get((client as unknown as { conn: object }).conn);
  if (t !== undefined) connackMsMax = Math.max(connackMsMax, performance.now() - t);
});
aedes.on("clientDisconnect", () => clients--);
process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
// BENCH_HEAP_SAMPLE=<file>:<from s>:<to s>[:all] (diagnosis): V8's sampling heap profile from <from> to <to>
// seconds after READY (common/src/heap-sample.ts)
await heapSampleFromEnv("BENCH_HEAP_SAMPLE", "broker child");
const watched = process.env.BENCH_WATCH_SESSION;
let sessionQueued: number | undefined;
setInterval(() => {
  if (watched) void backend.queueLength(watched).then((n) => (sessionQueued = n));
  const u = process.cpuUsage();
  const g = gc.take();
  const m = process.memoryUsage();
  // back-pressure: the largest socket write buffer now, and how many sockets wait for 'drain'
  let outBufMax = 0;
  let needDrain = 0;
  for (const so of sockets) {
    if (so.writableLength > outBufMax) outBufMax = so.writableLength;
    if (so.writableNeedDrain) needDrain++;
  }
  process.stdout.write(
    `STATS ${JSON.stringify({
      cpuUs: u.user + u.system,
      rss: m.rss,
      clients,
      queued: mq.length,
      deferred,
      loopDelayMsMax: Math.round(loopDelay.max / 1e6),
      connackMsMax: Math.round(connackMsMax),
      gcMs: Math.round(g.minor + g.major + g.incremental + g.other),
      gcWorstMs: Math.round(g.worst),
      gcWorstKind: g.worstKind,
      heapUsed: m.heapUsed,
      outBufMax,
      needDrain,
      drainWaits,
      heldForIds,
      idTimeouts,
      offlineDropped,
      sessionQueued,
    })}\n`,
  );
  loopDelay.reset();
  connackMsMax = 0;
  drainWaits = 0;
}, 1000).unref();
const stop = () => {
  for (const l of extraListeners) l.close();
  aedes.close(() => server.close(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
