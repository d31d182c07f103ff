import { fork } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";

/**
 * More file descriptors for one listening socket, so that a loaded event loop accepts `copies` connections
 * per iteration instead of one (docs/broker.md, "Connection storms").
 *
 * Since libuv 1.45 a listening handle accepts one connection each time the poller reports it ready, i.e.
 * once per loop iteration (libuv/libuv#3696). Each descriptor of the same socket is polled — and reported
 * — on its own, so N descriptors accept up to N connections per iteration from the one kernel queue.
 * Node 20 cannot duplicate a descriptor, but a handle passed over IPC arrives as a duplicate: a helper
 * process (`accept-copies-child.cjs`) receives the raw handle `copies` times and sends each back. It
 * does not listen on them and exits as soon as the copies are made; nothing of it stays.
 *
 * Resolves with the extra servers, listening and handing their connections to `onConnection` (close
 * them with the main server); rejects when the helper cannot be started or does not answer in `timeoutMs`.
 */
export async function acceptCopies(
  server: Server,
  copies: number,
  backlog: number,
  onConnection: (socket: Socket) => void,
  timeoutMs = 5_000,
): Promise<Server[]> {
  const handle = (server as unknown as { _handle?: object | null })._handle;
  if (copies <= 0 || !handle) return [];
  const helper = fork(fileURLToPath(new URL("./accept-copies-child.cjs", import.meta.url)), [], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
    execArgv: [], // not the parent's (tsx loader, --cpu-prof …): the helper is plain JavaScript
  });
  const handles: object[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the accept-copies helper in ${timeoutMs} ms`)), timeoutMs);
      helper.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      helper.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`accept-copies helper exited (${code}) before answering`));
      });
      helper.on("message", (msg: unknown, copy?: object) => {
        if (msg !== "copy" || !copy) return;
        handles.push(copy);
        if (handles.length === copies) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (let i = 0; i < copies; i++) helper.send("copy", handle as never);
    });
  } catch (e) {
    for (const h of handles) (h as { close(): void }).close();
    throw e;
  } finally {
    helper.removeAllListeners();
    helper.kill();
  }
  return Promise.all(
    handles.map(
      (h) =>
        new Promise<Server>((resolve, reject) => {
          const extra = createServer(onConnection);
          extra.once("error", reject);
          extra.listen(h as never, backlog, () => {
            extra.off("error", reject);
            resolve(extra);
          });
        }),
    ),
  );
}
