import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { acceptCopies } from "../src/accept-copies.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function listening(onConnection: (s: Socket) => void): Promise<Server> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1", backlog: 1024 }, resolve));
  cleanups.push(() => server.close());
  return server;
}

/** `n` connections from another process, held open; resolves once the kernel has completed all of them. */
async function connectFromAnotherProcess(port: number, n: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "accept-copies-"));
  const flag = join(dir, "connected");
  const script = `
    const net = require("node:net"); let ok = 0;
    for (let i = 0; i < ${n}; i++) net.connect(${port}, "127.0.0.1", () => { if (++ok === ${n}) require("node:fs").writeFileSync(${JSON.stringify(flag)}, ""); }).on("error", () => {});
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
  cleanups.push(() => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  // Hold this event loop (so nothing is accepted) until the other process has all its connections: they
  // wait in the kernel's accept queue. Then let exactly one loop iteration run.
  await new Promise<void>((resolve, reject) =>
    setTimeout(() => {
      const deadline = Date.now() + 10_000;
      while (!existsSync(flag)) if (Date.now() > deadline) return reject(new Error("the client process did not connect"));
      resolve();
    }, 0),
  );
}

describe("acceptCopies: more listening descriptors for one socket", () => {
  it("a loop iteration accepts one connection per descriptor (libuv accepts one per descriptor and iteration)", async () => {
    for (const copies of [0, 7]) {
      let accepted = 0;
      const count = (s: Socket) => {
        accepted++;
        cleanups.push(() => s.destroy());
      };
      const server = await listening(count);
      const extra = await acceptCopies(server, copies, 1024, count);
      cleanups.push(() => extra.forEach((s) => s.close()));
      expect(extra).toHaveLength(copies);
      const fds = [server, ...extra].map((s) => (s as unknown as { _handle: { fd: number } })._handle.fd);
      expect(new Set(fds).size).toBe(copies + 1); // distinct descriptors …
      expect(new Set([server, ...extra].map((s) => (s.address() as AddressInfo).port)).size).toBe(1); // … of one socket

      await connectFromAnotherProcess((server.address() as AddressInfo).port, 50);
      // the poll phase right after the hold accepts one per ready descriptor; this immediate runs after it
      const inOneIteration = await new Promise<number>((resolve) => setImmediate(() => resolve(accepted)));
      expect(inOneIteration).toBe(copies + 1);
      // and every connection is accepted, by one server or another
      const deadline = Date.now() + 10_000;
      while (accepted < 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(accepted).toBe(50);
      for (const c of cleanups.splice(0)) c();
    }
  }, 30_000);

  it("leaves no helper process behind, and closing every server frees the port", async () => {
    const server = await listening(() => {});
    const extra = await acceptCopies(server, 3, 1024, () => {});
    const { port } = server.address() as AddressInfo;
    // the helper is killed once the copies are made; give the kernel a moment to reap it
    await new Promise((r) => setTimeout(r, 200));
    const helpers = execFileSync("ps", ["-eo", "ppid=,args="], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes("accept-copies-child.cjs") && l.trim().startsWith(`${process.pid} `));
    expect(helpers).toEqual([]);
    await Promise.all([server, ...extra].map((s) => new Promise((r) => s.close(r))));
    const again = createServer();
    await new Promise<void>((resolve, reject) => {
      again.once("error", reject);
      again.listen(port, "127.0.0.1", resolve);
    });
    await new Promise((r) => again.close(r));
  });
});
