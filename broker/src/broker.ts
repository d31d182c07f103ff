// first: mqtt-packet must load with its quiet loggers before Aedes imports it (common/src/quiet-debug.ts)
import "@esp-fleet/common/quiet-debug";
// one write() per MQTT packet (common/src/packet-writes.ts)
import "@esp-fleet/common/packet-writes";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { IncomingMessage } from "node:http";
import { Aedes, type Client } from "aedes";
import { createHttpContext, type HttpContext } from "@esp-fleet/common/http";
import { createLogger, type Logger } from "@esp-fleet/common/logger";
import { errorMessage } from "@esp-fleet/common/errors";
import type { Db } from "@esp-fleet/db";
import { createAuthHooks } from "./auth.ts";
import type { BrokerConfig } from "./config.ts";
import { FileCredentialStore, type CredentialStore } from "./credentials.ts";
import { DbCredentialStore } from "./credential-db-store.ts";
import { createBrokerMetrics, type BrokerMetrics } from "./metrics.ts";
import { installRouterFixes } from "./router-fixes.ts";
import { disableHighWaterDedupe, isDuplicate } from "./dedupe.ts";
import { installJsonMirror } from "./json-mirror.ts";
import { installBatchedReplay } from "./replay.ts";
import { installPromptDelivery } from "./deliver.ts";
import { createIdentifierGate } from "./packet-ids.ts";
import { installFastPublish, type PacketParser } from "./fast-publish.ts";
import { coalesceWrites, countDrainWaits, raiseWriteHighWater } from "./coalesce.ts";
import { connectedTo, createBackend, limitOfflineQueues, type Backend } from "./persistence.ts";
import { listenTcp, listenTls, listenWebSocket, type Listener, type Transport } from "./listeners.ts";

export interface BrokerDeps {
  logger?: Logger;
  /** the shared HTTP context (readiness + metrics registry); one is created when absent */
  http?: HttpContext;
  /** where credentials live; default: `db` when given, else the credentials file */
  credentials?: CredentialStore;
  /** the shared database (all-in-one); credentials then live in its `credentials` table */
  db?: Db;
}

export interface BrokerPorts {
  mqtt: number;
  ws?: number;
  tls?: number;
}

export interface BrokerService {
  readonly aedes: Aedes;
  readonly http: HttpContext;
  readonly metrics: BrokerMetrics;
  readonly credentials: CredentialStore;
  readonly backend: "memory" | "redis";
  /** the bound ports, valid after start() (configured port 0 → the one the OS chose) */
  readonly ports: BrokerPorts;
  start(): Promise<BrokerPorts>;
  /** graceful: stop accepting, let in-flight deliveries finish within MQTT_SHUTDOWN_GRACE_MS, close */
  stop(): Promise<void>;
}

export function defaultCredentialStore(
  config: Pick<BrokerConfig, "DATA_DIR" | "MQTT_CREDENTIALS_FILE">,
  db?: Db,
): CredentialStore {
  if (db) return new DbCredentialStore(db);
  return new FileCredentialStore(config.MQTT_CREDENTIALS_FILE ?? join(config.DATA_DIR, "credentials.json"));
}

/** Close the connection when a packet's declared length exceeds `max` (Aedes has no such limit). */
function guardPacketSize(client: Client, max: number, onOversize: (length: number) => void): void {
  const parser = (
    client as unknown as { _parser: { _parseLength(): boolean; packet: { length: number }; _emitError(e: Error): void } }
  )._parser;
  const parseLength = parser._parseLength;
  parser._parseLength = function guardedParseLength(this: typeof parser) {
    const ok = parseLength.call(this);
    if (ok && this.packet.length > max) {
      onOversize(this.packet.length);
      this._emitError(new Error(`packet of ${this.packet.length} bytes exceeds MQTT_MAX_PACKET_SIZE=${max}`));
      return false;
    }
    return ok;
  };
}

function errorKind(message: string): string {
  if (message.includes("keep alive")) return "keepalive";
  if (message.includes("connect did not arrive")) return "connect_timeout";
  if (message.includes("drain timeout")) return "drain_timeout";
  if (message.includes("packet identifiers not released")) return "packet_ids_timeout";
  if (message.includes("MQTT_MAX_PACKET_SIZE")) return "oversized";
  if (/ECONNRESET|EPIPE|connection closed/.test(message)) return "reset";
  return "protocol";
}

export async function createBroker(config: Readonly<BrokerConfig>, deps: BrokerDeps = {}): Promise<BrokerService> {
  const logger = (deps.logger ?? createLogger("broker", { level: config.LOG_LEVEL })).child({ component: "broker" });
  const http = deps.http ?? createHttpContext(logger);
  const metrics = createBrokerMetrics(http.metrics);
  const credentials = deps.credentials ?? defaultCredentialStore(config, deps.db);
  let stopping = false;

  const backend: Backend = await createBackend(config.REDIS_URL, logger);
  const hooks = createAuthHooks({
    store: credentials,
    anonymous: config.MQTT_ANONYMOUS,
    metrics,
    logger,
    isStopping: () => stopping,
  });

  /** Client ids whose session last connected with a service account (ingest, sqal): their offline queue
   * holds up to MQTT_MAX_QUEUED_MESSAGES_SERVICE, a restart's worth of readings. */
  const serviceSessions = new Set<string>();
  const queueLimit = (clientId: string) =>
    serviceSessions.has(clientId) ? config.MQTT_MAX_QUEUED_MESSAGES_SERVICE : config.MQTT_MAX_QUEUED_MESSAGES;
  let heldLogAt = 0;
  const idGate =
    backend.idsInUse &&
    createIdentifierGate(backend.idsInUse, {
      holdTimeoutMs: config.MQTT_DRAIN_TIMEOUT_MS,
      onHold(clientId) {
        metrics.idsHeld.inc();
        const now = Date.now();
        if (now - heldLogAt < 10_000) return;
        heldLogAt = now;
        logger.warn(
          { clientId },
          "a persistent session holds nearly all 65,535 packet identifiers unacknowledged; its deliveries wait for PUBACKs",
        );
      },
      onTimeout(clientId) {
        logger.warn(
          { clientId, ms: config.MQTT_DRAIN_TIMEOUT_MS },
          "no packet identifier released in time: client disconnected, its queue is kept for its return",
        );
      },
    });
  const aedes = new Aedes({
    ...(backend.mq ? { mq: backend.mq } : {}),
    persistence: backend.persistence,
    concurrency: config.MQTT_CONCURRENCY,
    connectTimeout: config.MQTT_CONNECT_TIMEOUT_MS,
    drainTimeout: config.MQTT_DRAIN_TIMEOUT_MS,
    authenticate(client, username, password, done) {
      hooks.authenticate(client, username, password, (err, ok) => {
        // remembered for its offline queue's bound (MQTT_MAX_QUEUED_MESSAGES_SERVICE)
        if (!err && ok) {
          const who = hooks.principalOf(client);
          if (who?.kind === "user" && who.role === "service") serviceSessions.add(client.id);
          else serviceSessions.delete(client.id);
        }
        done(err, ok);
      });
    },
    preConnect(client, packet, callback) {
      // exact duplicate suppression instead of Aedes's high-water mark, which drops overtaken messages
      // (dedupe.ts); before anything can be forwarded to this client
      disableHighWaterDedupe(client);
      // before any subscription binds the client's delivery functions: with the in-memory queue, Aedes's
      // delivery by the same steps, deciding in the turn it numbers a message whether it is still to be
      // written, and deliveries to a session that holds nearly all 65,535 packet identifiers wait
      // (packet-ids.ts); MQTT_PROMPT_DELIVERY: deliveries free their routing slot when written, not two turns
      // later (deliver.ts)
      if (idGate) idGate.install(client, { prompt: config.MQTT_PROMPT_DELIVERY });
      else if (config.MQTT_PROMPT_DELIVERY) installPromptDelivery(client);
      countDrainWaits(client, () => metrics.drainWaits.inc());
      hooks.preConnect(client, packet, callback);
    },
    authorizePublish: hooks.authorizePublish,
    authorizeSubscribe: hooks.authorizeSubscribe,
    authorizeForward(client, packet) {
      // the same message through a second matching subscription (dedupe.ts)
      if (isDuplicate(client, packet)) return null;
      metrics.countOut(packet.qos);
      return packet;
    },
  });
  // the topic-match cache only on Aedes's own in-memory emitter (mqemitter-redis routes through Redis)
  if (!installRouterFixes(aedes, { cacheMatches: !backend.mq, onDefer: () => metrics.emitterDeferred.inc() }))
    logger.warn("routing emitter without the expected backlog arrays: its queue stays an array (O(n) shift)");
  // a returning persistent session's queue leaves in batches, not one message per event-loop turn (replay.ts)
  installBatchedReplay(aedes, backend.persistence, {
    ...(backend.idsInUse && idGate ? { standing: backend.idsInUse.standing, room: idGate.room } : {}),
    onReplayed(clientId, written, ms) {
      metrics.replayed.inc(written);
      if (written > 0) logger.info({ clientId, messages: written, ms: Math.round(ms) }, "session queue replayed");
    },
  });
  if (config.MQTT_JSON_MIRROR) installJsonMirror(aedes, (ok) => metrics.jsonMirrored.inc({ decoded: ok ? "yes" : "no" }));

  // Refused publishes were acknowledged (auth.ts); here they stop before routing.
  // Publishes from clients between their start and their end (persisted, routed): stop() waits for them,
  // because Aedes acknowledges a QoS 1 message before it routes it.
  let publishing = 0;
  const published = (done: ((err?: Error) => void) | undefined) => (err?: Error) => {
    publishing--;
    done?.(err);
  };
  const publish = aedes.publish.bind(aedes) as (packet: unknown, client: unknown, done?: (err?: Error) => void) => void;
  (aedes as unknown as { publish: typeof publish }).publish = function guardedPublish(packet, client, done) {
    if (typeof client === "function") return publish(packet, client);
    if (client && hooks.isDropped(packet as object)) {
      done?.();
      return;
    }
    // counted here rather than on Aedes's 'publish' event: no listener means a cheaper emit per message
    if (!client) return publish(packet, client, done);
    metrics.countIn((packet as { qos: number }).qos);
    publishing++;
    publish(packet, client, published(done));
  };

  let dropLogAt = 0;
  let dropsSinceLog = 0;
  limitOfflineQueues(
    backend.persistence,
    {
      limitFor: queueLimit,
      anyLimit: config.MQTT_MAX_QUEUED_MESSAGES > 0 || config.MQTT_MAX_QUEUED_MESSAGES_SERVICE > 0,
      isConnectedHere: connectedTo(aedes),
      onDrop(clientId, topic) {
        metrics.offlineDropped.inc();
        dropsSinceLog++;
        const now = Date.now();
        if (now - dropLogAt > 10_000) {
          logger.warn(
            {
              clientId,
              topic,
              dropped: dropsSinceLog,
              limit: queueLimit(clientId),
            },
            "offline queue full: newest messages dropped",
          );
          dropLogAt = now;
          dropsSinceLog = 0;
        }
      },
    },
    backend.queueLength,
  );

  aedes.on("clientError", (client: Client, err: Error) => {
    metrics.clientErrors.inc({ kind: errorKind(err.message) });
    logger.debug({ clientId: client.id, err: err.message }, "client error");
  });
  aedes.on("connectionError", (_client: Client, err: Error) => {
    metrics.clientErrors.inc({ kind: errorKind(err.message) });
    logger.debug({ err: err.message }, "connection error before CONNECT");
  });
  (aedes as unknown as NodeJS.EventEmitter).on("error", (err: Error) => logger.error({ err }, "broker error"));

  metrics.sources.connectedClients = () => aedes.connectedClients ?? 0;
  metrics.sources.emitterQueue = () => (aedes as unknown as { mq: { length: number } }).mq.length ?? 0;
  metrics.sources.retained = async () => {
    if (backend.retainedCount) return backend.retainedCount();
    const p = backend.persistence as unknown as { createRetainedStreamCombi(patterns: string[]): AsyncIterable<unknown> };
    let n = 0;
    try {
      for await (const _ of p.createRetainedStreamCombi(["#"])) if (++n >= 1_000_000) break;
      return n;
    } catch (err) {
      logger.debug({ err }, "cannot count retained messages");
      return undefined;
    }
  };

  await aedes.listen();

  const onConnection = (stream: Duplex, transport: Transport, req?: IncomingMessage) => {
    if (stopping) {
      stream.destroy();
      return;
    }
    metrics.connections.inc({ transport });
    // TCP/TLS: one writev per socket per event-loop turn instead of one per packet (coalesce.ts).
    // A WebSocket stream turns every write into its own frame, so corking it would gain nothing.
    if (config.MQTT_COALESCE_WRITES && transport !== "ws") coalesceWrites(stream);
    // A subscriber taking the fleet's whole stream (ingest) must not hold the router's slots on every turn.
    raiseWriteHighWater(stream, config.MQTT_WRITE_HIGH_WATER_KB * 1024);
    const client = aedes.handle(stream, req);
    guardPacketSize(client, config.MQTT_MAX_PACKET_SIZE, (length) => {
      metrics.oversizedPackets.inc();
      logger.warn({ transport, length, max: config.MQTT_MAX_PACKET_SIZE }, "oversized packet: connection closed");
    });
    // whole PUBLISH and four-byte PUBACK packets read directly; anything else, and anything over the limit,
    // by mqtt-packet (fast-publish.ts)
    installFastPublish((client as unknown as { _parser: PacketParser })._parser, config.MQTT_MAX_PACKET_SIZE);
  };

  const listeners: Listener[] = [];
  const ports: BrokerPorts = { mqtt: -1 };
  let started = false;
  let stopped: Promise<void> | undefined;

  http.readiness.add("broker", async () => {
    if (!started || stopping) throw new Error(stopping ? "shutting down" : "not listening yet");
    await backend.ping();
  });

  const service: BrokerService = {
    aedes,
    http,
    metrics,
    credentials,
    backend: backend.kind,
    ports,
    async start() {
      if (started) return ports;
      try {
        const tcp = await listenTcp(config.MQTT_HOST, config.MQTT_PORT, onConnection, {
          acceptHandles: config.MQTT_ACCEPT_HANDLES,
          onWarning: (message, err) => logger.warn({ err: err.message }, message),
        });
        listeners.push(tcp);
        ports.mqtt = tcp.port;
        if (config.MQTT_WS_ENABLED) {
          const ws = await listenWebSocket(config.MQTT_HOST, config.MQTT_WS_PORT, config.MQTT_MAX_PACKET_SIZE + 5, onConnection);
          listeners.push(ws);
          ports.ws = ws.port;
        }
        if (config.MQTT_TLS_CERT || config.MQTT_TLS_KEY) {
          if (!config.MQTT_TLS_CERT || !config.MQTT_TLS_KEY) {
            const { ConfigError } = await import("@esp-fleet/common/errors");
            throw new ConfigError("MQTT_TLS_CERT and MQTT_TLS_KEY must be set together");
          }
          const tls = await listenTls(
            config.MQTT_HOST,
            config.MQTT_TLS_PORT,
            config.MQTT_TLS_CERT,
            config.MQTT_TLS_KEY,
            onConnection,
          );
          listeners.push(tls);
          ports.tls = tls.port;
        }
      } catch (e) {
        await Promise.all(listeners.map((l) => l.close()));
        listeners.length = 0;
        throw e;
      }
      started = true;
      logger.info(
        { ports, backend: backend.kind, credentials: credentials.kind, anonymous: config.MQTT_ANONYMOUS },
        "broker listening",
      );
      return ports;
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        const closing = listeners.map((l) => l.close());
        // No new packets are read; what was accepted gets a bounded time to reach its subscribers.
        const clients = Object.values((aedes as unknown as { clients: Record<string, Client> }).clients);
        for (const c of clients) (c as unknown as { pause(): void }).pause();
        const mq = (aedes as unknown as { mq: { current: number; length: number } }).mq;
        const deadline = Date.now() + config.MQTT_SHUTDOWN_GRACE_MS;
        // A QoS 1 message is acknowledged first and published on the next turn (Aedes): let those start.
        await new Promise((r) => setImmediate(r));
        const pending = () => publishing + mq.current + mq.length;
        while (pending() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        if (pending() > 0) logger.warn({ pending: pending() }, "shutdown grace expired with messages in flight");
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, 2000).unref())]);
        await backend.close().catch((err: unknown) => logger.warn({ err: errorMessage(err) }, "backend close failed"));
        await credentials.close().catch(() => {});
        logger.info("broker stopped");
      })();
      return stopped;
    },
  };
  return service;
}
