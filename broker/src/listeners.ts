import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from "node:http";
import { createServer as createTlsServer } from "node:tls";
import { readFileSync } from "node:fs";
import type { Duplex } from "node:stream";
import { WebSocketServer, createWebSocketStream } from "ws";
import { ConfigError, UnavailableError } from "@esp-fleet/common/errors";
import { acceptCopies } from "./accept-copies.ts";

export type Transport = "tcp" | "tls" | "ws";
export type ConnectionHandler = (stream: Duplex, transport: Transport, req?: IncomingMessage) => void;

export interface Listener {
  transport: Transport;
  port: number;
  /** stop accepting; resolves once the listening socket is closed (existing connections are left alone) */
  close(): Promise<void>;
}

/**
 * Pending connections the kernel queues for us (capped by `net.core.somaxconn`, 4096 on current Linux).
 * Node's default is 511: when a fleet (re)connects at once — 2,000 devices a second after a power cut or a
 * broker restart — a busy event-loop turn of a quarter of a second fills it, the kernel drops SYNs, and each
 * of those devices waits 1 s, then 3 s, 7 s for its retransmissions, often past its connect timeout.
 */
export const LISTEN_BACKLOG = 4096;

/** Listen, turning EADDRINUSE/EACCES into a one-line error that names the variable to change. */
async function listen(server: NetServer | HttpServer, port: number, host: string, variable: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      const why =
        err.code === "EADDRINUSE" ? "address already in use" : err.code === "EACCES" ? "permission denied" : err.message;
      reject(
        new UnavailableError(`${variable}=${port}: cannot listen on ${host}:${port}: ${why}`, { variable, port }, { cause: err }),
      );
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ port, host, backlog: LISTEN_BACKLOG });
  });
  return (server.address() as AddressInfo).port;
}

function closeServer(server: NetServer | HttpServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

export interface TcpListenOptions {
  /** listening descriptors of the socket (docs/broker.md, "Connection storms"); 1 = Node's one */
  acceptHandles?: number;
  /** told when the extra descriptors could not be made; the listener then works with one */
  onWarning?: (message: string, err: Error) => void;
}

export async function listenTcp(
  host: string,
  port: number,
  onConnection: ConnectionHandler,
  opts: TcpListenOptions = {},
): Promise<Listener> {
  const accept = (socket: Socket) => {
    onConnection(socket, "tcp");
  };
  const server = createNetServer(accept);
  const bound = await listen(server, port, host, "MQTT_PORT");
  // The copies take a helper process, 110–180 ms: made in the background, so start-up does not wait for
  // them; the first descriptor accepts meanwhile. close() waits for them before closing anything: Node
  // sends the handle over IPC one copy at a time, and sending a closed one throws (EINVAL) where nothing
  // can catch it.
  const extra = acceptCopies(server, (opts.acceptHandles ?? 1) - 1, LISTEN_BACKLOG, accept).catch((e: unknown) => {
    opts.onWarning?.(
      "MQTT_ACCEPT_HANDLES: could not add listening descriptors; accepting one connection per loop iteration",
      e as Error,
    );
    return [];
  });
  return {
    transport: "tcp",
    port: bound,
    close: async () => void (await Promise.all([server, ...(await extra)].map(closeServer))),
  };
}

export async function listenTls(
  host: string,
  port: number,
  certPath: string,
  keyPath: string,
  onConnection: ConnectionHandler,
): Promise<Listener> {
  let cert: Buffer, key: Buffer;
  try {
    cert = readFileSync(certPath);
  } catch (e) {
    throw new ConfigError(`MQTT_TLS_CERT=${certPath}: cannot read: ${(e as Error).message}`);
  }
  try {
    key = readFileSync(keyPath);
  } catch (e) {
    throw new ConfigError(`MQTT_TLS_KEY=${keyPath}: cannot read: ${(e as Error).message}`);
  }
  let server;
  try {
    server = createTlsServer({ cert, key }, (socket) => onConnection(socket, "tls"));
  } catch (e) {
    throw new ConfigError(`MQTT_TLS_CERT/MQTT_TLS_KEY: not a usable certificate and key: ${(e as Error).message}`);
  }
  const bound = await listen(server, port, host, "MQTT_TLS_PORT");
  return { transport: "tls", port: bound, close: () => closeServer(server) };
}

/** MQTT over WebSocket (subprotocol `mqtt`), one binary frame stream per connection. */
export async function listenWebSocket(
  host: string,
  port: number,
  maxPayload: number,
  onConnection: ConnectionHandler,
): Promise<Listener> {
  const server = createHttpServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("MQTT over WebSocket: upgrade required\n");
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload });
  wss.on("connection", (ws, req) => {
    const stream = createWebSocketStream(ws);
    stream.on("error", () => stream.destroy());
    onConnection(stream, "ws", req);
  });
  const bound = await listen(server, port, host, "MQTT_WS_PORT");
  return {
    transport: "ws",
    port: bound,
    close: async () => {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeServer(server);
    },
  };
}
