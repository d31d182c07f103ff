import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@esp-fleet/common/testing";
import { encodeCbor } from "@esp-fleet/schemas";
import { closeClient, connect, startBroker, type TestBrokerHandle } from "./helpers.ts";

describe("JSON mirror (MQTT_JSON_MIRROR=on)", () => {
  let b: TestBrokerHandle;
  beforeAll(async () => {
    b = await startBroker({ MQTT_ANONYMOUS: "full", MQTT_JSON_MIRROR: "on" });
  });
  afterAll(async () => {
    await b?.close();
  });

  it("republishes device messages as JSON under json/{topic}, retained when the original is, errors included", async () => {
    const dev = await connect(b.url, { clientId: "d1" });
    const status = { v: 1, dev: "d1", boot: 2, seq: 0, ts: 1_764_547_200_123, state: "online" };
    await dev.publishAsync("LL/fridge/d1/status", Buffer.from(encodeCbor(status)), { qos: 1, retain: true });

    // A late subscriber gets the retained mirror of the status.
    const viewer = await connect(b.url, { clientId: "viewer-1" });
    const got: { topic: string; body: unknown; retain: boolean }[] = [];
    viewer.on("message", (topic, payload, packet) =>
      got.push({ topic, body: JSON.parse(payload.toString()), retain: packet.retain }),
    );
    await viewer.subscribeAsync("json/#", { qos: 0 });
    await waitFor(() => got.find((g) => g.topic === "json/LL/fridge/d1/status"), "retained JSON status");
    expect(got.find((g) => g.topic === "json/LL/fridge/d1/status")).toEqual({
      topic: "json/LL/fridge/d1/status",
      body: status,
      retain: true,
    });

    await dev.publishAsync("LL/fridge/d1/telemetry", Buffer.from(encodeCbor(status)).subarray(0, 5), { qos: 1 }); // truncated
    const bad = await waitFor(() => got.find((g) => g.topic === "json/LL/fridge/d1/telemetry"), "mirrored error");
    expect(bad.body).toEqual({ error: expect.stringMatching(/^cbor: /) });
    expect(got.some((g) => g.topic.startsWith("json/json/"))).toBe(false);
    await closeClient(dev);
    await closeClient(viewer);
  });
});
