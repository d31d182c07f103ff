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

/** First bytes of the four acknowledgements of MQTT 3.1.1 (§3.4–3.7): PUBACK, PUBREC, PUBREL (its
 * fixed flags 0b0010), PUBCOMP. */
const ACK_HEADER = new Map<unknown, number>([
  ["puback", 0x40],
  ["pubrec", 0x50],
  ["pubrel", 0x62],
  ["pubcomp", 0x70],
]);

/**
 * A QoS acknowledgement of MQTT 3.1/3.1.1 (or of 5 written without `opts`, as mqtt-packet would too) as its
 * four bytes — header, remaining length 2, packet identifier — or undefined for anything else, which then
 * goes through mqtt-packet. The same bytes mqtt-packet's `confirmation()` writes (a property test compares
 * them); without its three writes into the gatherer (header, length, identifier) and the copy into one buffer. The broker writes one
 * per QoS 1 message it receives, to a socket of its own: at 10,000 devices it is the packet it writes most.
 */
function ackBytes(packet: object, opts: object | undefined): Buffer | undefined {
  const p = packet as { cmd?: unknown; messageId?: unknown; dup?: unknown; reasonCode?: unknown; properties?: unknown };
  // (a Map, not an object literal: a command named after an Object.prototype property is no acknowledgement)
  const header = ACK_HEADER.get(p.cmd);
  const id = p.messageId;
  if (header === undefined || typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0xffff) return undefined;
  if (opts && (opts as { protocolVersion?: unknown }).protocolVersion === 5) return undefined;
  // a PUBREL flagged DUP (no such thing in 3.1.1, whose PUBREL flags are fixed) is mqtt-packet's to refuse
  if (p.dup && p.cmd === "pubrel") return undefined;
  const buf = Buffer.allocUnsafe(4);
  buf[0] = header;
  buf[1] = 2;
  buf[2] = id >> 8;
  buf[3] = id & 0xff;
  return buf;
}

export function installSingleBufferWrites(mqttPacket: { writeToStream: WriteToStream }): boolean {
  const original = mqttPacket.writeToStream;
  if (original.singleBuffer) return false;
  const gather = new Gatherer();
  const writeToStream = function singleBufferWriteToStream(packet: object, stream: PacketStream, opts?: object) {
    const ack = ackBytes(packet, opts);
    if (ack) return stream.write(ack);
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
