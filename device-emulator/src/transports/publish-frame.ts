/**
 * One MQTT 3.1.1 QoS 1 PUBLISH packet as a single buffer (fixed header, remaining length, topic,
 * packet id, payload) — byte for byte what mqtt-packet's `writeToStream` produces for the same packet
 * (property test), but in one allocation and one `socket.write` instead of five corked writes, a
 * `process.nextTick` uncork and a `writev` of five chunks per message.
 * The payload is the frame's last `payload.byteLength` bytes (a view there is a copy of the payload
 * owned by the frame).
 */
export function encodePublishFrame(topic: string, payload: Uint8Array, messageId: number, retain: boolean): Buffer {
  const topicLen = Buffer.byteLength(topic, "utf8");
  const remaining = 2 + topicLen + 2 + payload.byteLength;
  const lenBytes = remaining < 0x80 ? 1 : remaining < 0x4000 ? 2 : remaining < 0x20_0000 ? 3 : 4;
  const frame = Buffer.allocUnsafe(1 + lenBytes + remaining);
  // Fixed header: PUBLISH (3), DUP 0, QoS 1, RETAIN.
  frame[0] = 0x32 | (retain ? 1 : 0);
  let pos = 1;
  let x = remaining;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    frame[pos++] = byte;
  } while (x > 0);
  frame[pos++] = topicLen >> 8;
  frame[pos++] = topicLen & 0xff;
  pos += frame.write(topic, pos, topicLen, "utf8");
  frame[pos++] = messageId >> 8;
  frame[pos++] = messageId & 0xff;
  frame.set(payload, pos);
  return frame;
}
