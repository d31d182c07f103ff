import type { Aedes, AedesPublishPacket } from "aedes";
import { decodeMessage, jsonMirrorTopic, toJsonValue } from "@esp-fleet/schemas";

/**
 * The optional JSON mirror (DESIGN §2): every message on a device or service topic is republished,
 * decoded, as JSON under `json/{topic}` — retained when the original is (a late `mosquitto_sub -t 'json/#'`
 * sees each device's last status) — so plain MQTT tools can read the traffic. A payload that does not
 * decode is mirrored as `{"error": "…"}`. Runs inside the broker; costs one decode per message, so it is
 * off unless MQTT_JSON_MIRROR is on (the all-in-one turns it on).
 */
export function installJsonMirror(aedes: Aedes, onMirrored: (ok: boolean) => void = () => {}): () => void {
  const handler = (packet: AedesPublishPacket, done: () => void) => {
    const topic = packet.topic;
    if (topic.startsWith("json/") || topic.startsWith("$")) return done();
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const decoded = decodeMessage(topic, payload);
    const body = decoded.ok ? toJsonValue(decoded.value.message) : { error: `${decoded.error.stage}: ${decoded.error.error}` };
    onMirrored(decoded.ok);
    aedes.publish(
      {
        cmd: "publish",
        topic: jsonMirrorTopic(topic),
        payload: Buffer.from(JSON.stringify(body)),
        qos: 0,
        retain: packet.retain,
        dup: false,
      } as AedesPublishPacket,
      () => done(),
    );
  };
  aedes.subscribe("#", handler, () => {});
  return () => aedes.unsubscribe("#", handler, () => {});
}
