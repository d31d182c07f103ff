import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// mqtt-packet's own packet class, so that a packet read here is the object its parser would have made
const MqttPacket = require("mqtt-packet/packet.js") as new () => ParsedPublish;

/**
 * Whole PUBLISH and PUBACK packets read without mqtt-packet's state machine (docs/broker.md, "Throughput").
 *
 * Under a fleet nearly every read from a device's socket is one whole PUBLISH: its reading, once a second.
 * mqtt-packet's parser appends each read to a buffer list (bl), then walks five states, each through bl's
 * generic accessors — reading a byte, consuming it, slicing the payload, re-basing the list — about as
 * much CPU per message as all of Aedes's routing of it (8 % of the broker's busy time in a profile of
 * bench:broker's fleet phase).
 *
 * Here a read that begins at a packet boundary (nothing held from an earlier read, no error pending) is
 * walked directly while it holds whole PUBLISH packets of MQTT 3.1/3.1.1, each emitted as the parser would
 * emit it: mqtt-packet's `Packet` with the same fields (`cmd`, `retain`, `qos`, `dup`, `length`, `topic`,
 * `payload` — a view into the read, as bl's slice of a single buffer is — and `messageId` at QoS 1/2).
 * PUBACKs of four bytes are walked too (`cmd`, `length` 2, `messageId`, the rest the class's defaults, as
 * the parser leaves them): a persistent subscriber acknowledges every message it is sent — ingest, ten
 * thousand a second under the fleet — and on its connection the parser's work per PUBACK (bl's copies of
 * the header, length and identifier bytes, a `Packet`) was ~7 % of everything the broker allocated
 * (a sampling heap profile of bench:e2e, docs/benchmarks.md "End to end, thirteenth session").
 * Anything else — another packet type, a packet cut at the end of the read, one over `maxPacketSize`, any
 * field the parser would refuse (QoS 3, a topic running past the packet, a missing packet identifier), an
 * MQTT 5 parser — stops the walk, and the rest of the read goes to mqtt-packet's `parse` as it is, which
 * decides, refuses and reports exactly as before. So nothing is accepted here that the parser would not
 * accept, and packets are emitted in the order they were read. A property test compares the two parsers
 * over random packet streams cut at random points (broker/test/fast-publish.test.ts).
 */
export interface ParsedPublish {
  cmd: string | null;
  retain: boolean;
  qos: number;
  dup: boolean;
  length: number;
  topic: string | null;
  payload: Buffer | null;
  messageId?: number;
}

export interface PacketParser {
  parse(buf: Buffer): number;
  emit(event: "packet", packet: ParsedPublish): boolean;
  error: Error | null;
  settings?: { protocolVersion?: number };
  _list: { length: number };
  _stateCounter: number;
}

/** How many bytes at the start of `buf` are whole PUBLISH or PUBACK packets, emitting each (stops at anything else);
 * −1 when a listener left the parser in error (the rest of the read is dropped, as mqtt-packet drops it). */
function walk(parser: PacketParser, buf: Buffer, maxPacketSize: number): number {
  let at = 0;
  while (at < buf.length) {
    const first = buf[at] as number;
    if (first === 0x40) {
      // a PUBACK of MQTT 3.1/3.1.1 as every client writes it, four bytes: what a persistent subscriber
      // (ingest) sends for every message it stores — anything else (a longer remaining length, an MQTT 5
      // reason code, a cut packet) is left to the parser
      if (at + 4 > buf.length || buf[at + 1] !== 2 || maxPacketSize < 2) break;
      const packet = new MqttPacket();
      packet.cmd = "puback";
      packet.length = 2;
      packet.messageId = ((buf[at + 2] as number) << 8) | (buf[at + 3] as number);
      at += 4;
      parser.emit("packet", packet);
      if (parser.error) return -1;
      continue;
    }
    if (first >> 4 !== 3) break; // not a PUBLISH (nor a PUBACK, above)
    const qos = (first >> 1) & 3;
    if (qos === 3) break; // the parser refuses it
    // remaining length: a variable byte integer of at most four bytes
    let length = 0;
    let mul = 1;
    let i = at + 1;
    let complete = false;
    for (let k = 0; k < 4 && i < buf.length; k++) {
      const b = buf[i++] as number;
      length += (b & 0x7f) * mul;
      mul *= 0x80;
      if ((b & 0x80) === 0) {
        complete = true;
        break;
      }
    }
    if (!complete || length > maxPacketSize) break;
    const body = i;
    const end = body + length;
    if (end > buf.length || length < 2) break;
    const topicEnd = body + 2 + (((buf[body] as number) << 8) | (buf[body + 1] as number));
    let payloadStart = topicEnd;
    if (topicEnd > end) break;
    let messageId = 0;
    if (qos > 0) {
      if (end - topicEnd < 2) break;
      messageId = ((buf[topicEnd] as number) << 8) | (buf[topicEnd + 1] as number);
      payloadStart += 2;
    }
    const packet = new MqttPacket();
    packet.cmd = "publish";
    packet.retain = (first & 0x01) !== 0;
    packet.qos = qos;
    packet.dup = (first & 0x08) !== 0;
    packet.length = length;
    packet.topic = buf.toString("utf8", body + 2, topicEnd);
    if (qos > 0) packet.messageId = messageId;
    packet.payload = buf.subarray(payloadStart, end);
    at = end;
    parser.emit("packet", packet);
    if (parser.error) return -1; // (a listener's doing; the parser's own loop stops on it too)
  }
  return at;
}

/** Install the fast path on one mqtt-packet parser (an Aedes client's `_parser`). */
export function installFastPublish(parser: PacketParser, maxPacketSize = Number.POSITIVE_INFINITY): void {
  const parse = parser.parse;
  parser.parse = function fastPublishParse(this: PacketParser, buf: Buffer): number {
    if (this.error || this._list.length !== 0 || this._stateCounter !== 0 || this.settings?.protocolVersion === 5)
      return parse.call(this, buf);
    const used = walk(this, buf, maxPacketSize);
    if (used < 0) return 0;
    if (used === buf.length) return 0; // what the parser returns: bytes held for a next read
    return parse.call(this, used === 0 ? buf : buf.subarray(used));
  };
}
