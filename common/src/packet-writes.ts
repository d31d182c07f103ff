// after the quiet loggers: requiring mqtt-packet here must not be its first load (common/src/quiet-debug.ts)
import "./quiet-debug.ts";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/**
 * One `write()` per MQTT packet instead of five or six (docs/broker.md, "Throughput").
 *
 * mqtt-packet's `writeToStream` — which Aedes and MQTT.js call for every packet they send — corks the
 * stream, writes each field as its own chunk (header, remaining length, topic length, topic, packet id,
 * payload), and schedules an uncork on `process.nextTick`. Every chunk goes through the Writable
 * machinery (a buffered-request object each) and leaves in a `writev` of six. Here the same function
 * writes the fields into a gatherer, and the packet goes out as one buffer in one `write()`: the bytes
 * are exactly those mqtt-packet produces (it still does all the encoding and validation), only the
 * copying into one buffer is new. ~5 → ~3.3 µs of JavaScript per packet written to a socket in a
 * micro-benchmark (docs/benchmarks.md).
 *
 * Semantics kept: the return value is the stream's `write()` result (false past the high-water mark, as
 * before, which is what Aedes and MQTT.js wait on); an invalid packet destroys the stream with
 * mqtt-packet's own error and returns false — and now nothing of it reaches the wire first; the
 * `cacheNumbers` switch MQTT.js sets still reaches mqtt-packet. Installed once per process, on import,
 * by the broker, the emulator's transport and ingest; idempotent.
 */
type Chunk = Buffer | string;
interface PacketStream {
  write(chunk: Chunk, encoding?: BufferEncoding): boolean;
  destroy(err?: Error): unknown;
}
type WriteToStream = ((packet: object, stream: PacketStream, opts?: object) => boolean) & {
  cacheNumbers: boolean;
  singleBuffer?: true;
};

/** The fields of one packet, as mqtt-packet writes them. Synchronous and not re-entered, so one serves. */
class Gatherer implements PacketStream {
  chunks: Chunk[] = [];
  bytes = 0;
  error: Error | undefined = undefined;
  write(chunk: Chunk): boolean {
    this.chunks.push(chunk);
    this.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    return true;
  }
  destroy(err?: Error): void {
    this.error = err ?? new Error("mqtt-packet destroyed the stream");
  }
  reset(): void {
    this.chunks.length = 0;
    this.bytes = 0;
    this.error = undefined;
  }
  concat(): Buffer {
    const out = Buffer.allocUnsafe(this.bytes);
    let at = 0;
    for (const c of this.chunks) at += typeof c === "string" ? out.write(c, at) : c.copy(out, at);
    return out;
  }
}

export function installSingleBufferWrites(mqttPacket: { writeToStream: WriteToStream }): boolean {
  const original = mqttPacket.writeToStream;
  if (original.singleBuffer) return false;
  const gather = new Gatherer();
  const writeToStream = function singleBufferWriteToStream(packet: object, stream: PacketStream, opts?: object) {
    gather.reset();
    original(packet, gather, opts);
    const { error } = gather;
    if (error) {
      gather.reset();
      stream.destroy(error);
      return false;
    }
    const buf = gather.concat();
    gather.reset(); // drop the references to the payload
    return stream.write(buf);
  } as WriteToStream;
  Object.defineProperty(writeToStream, "cacheNumbers", {
    get: () => original.cacheNumbers,
    set: (v: boolean) => {
      original.cacheNumbers = v;
    },
  });
  writeToStream.singleBuffer = true;
  mqttPacket.writeToStream = writeToStream;
  return true;
}

installSingleBufferWrites(require("mqtt-packet") as { writeToStream: WriteToStream });
