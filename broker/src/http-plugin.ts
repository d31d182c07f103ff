import type { FastifyPluginAsync } from "fastify";
import type { BrokerService } from "./broker.ts";

/**
 * The broker's HTTP surface as a Fastify plugin, so the all-in-one mounts it on its one server.
 * Readiness ("broker") and the metrics are registered on the shared HttpContext by `createBroker`;
 * this adds `GET /broker` — ports, backend, connected clients and cluster peers.
 */
export const brokerHttpPlugin: FastifyPluginAsync<{ broker: BrokerService }> = async (app, opts) => {
  const { broker } = opts;
  app.get("/broker", async () => {
    const aedes = broker.aedes as unknown as { id: string; connectedClients?: number; brokers: Record<string, number> };
    return {
      id: aedes.id,
      ports: broker.ports,
      backend: broker.backend,
      credentials: broker.credentials.kind,
      connectedClients: aedes.connectedClients ?? 0,
      clusterPeers: Object.keys(aedes.brokers).filter((id) => id !== aedes.id),
    };
  });
};
