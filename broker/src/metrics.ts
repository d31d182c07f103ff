import { Counter, Gauge, type Registry } from "prom-client";

/** The broker's Prometheus series, registered on the shared registry of the HTTP context. */
export interface MetricSources {
  connectedClients?: () => number;
  emitterQueue?: () => number;
  retained?: () => Promise<number | undefined>;
}

export function createBrokerMetrics(registry: Registry) {
  const registers = [registry];
  const sources: MetricSources = {};
  return {
    /** filled in by the broker once Aedes exists; read on every scrape */
    sources,
    connectedClients: new Gauge({
      name: "broker_connected_clients",
      help: "MQTT clients connected to this node",
      registers,
      collect() {
        if (sources.connectedClients) this.set(sources.connectedClients());
      },
    }),
    connections: new Counter({
      name: "broker_connections_total",
      help: "accepted transport connections",
      labelNames: ["transport"],
      registers,
    }),
    messagesIn: new Counter({
      name: "broker_messages_in_total",
      help: "PUBLISH packets received from clients",
      labelNames: ["qos"],
      registers,
    }),
    messagesOut: new Counter({
      name: "broker_messages_out_total",
      help: "PUBLISH packets forwarded to subscribers",
      labelNames: ["qos"],
      registers,
    }),
    authRefused: new Counter({
      name: "broker_auth_refused_total",
      help: "refused CONNECTs by reason",
      labelNames: ["reason"],
      registers,
    }),
    publishRefused: new Counter({
      name: "broker_publish_refused_total",
      help: "publishes (and wills) dropped by the ACL",
      labelNames: ["kind"],
      registers,
    }),
    subscribeRefused: new Counter({
      name: "broker_subscribe_refused_total",
      help: "subscriptions refused by the ACL (SUBACK 0x80)",
      registers,
    }),
    oversizedPackets: new Counter({
      name: "broker_oversized_packets_total",
      help: "connections closed for a packet above MQTT_MAX_PACKET_SIZE",
      registers,
    }),
    offlineDropped: new Counter({
      name: "broker_offline_dropped_total",
      help: "QoS>0 messages not queued because an offline session's queue was full",
      registers,
    }),
    clientErrors: new Counter({
      name: "broker_client_errors_total",
      help: "client connections closed on an error (timeouts, protocol, drain)",
      labelNames: ["kind"],
      registers,
    }),
    retained: new Gauge({
      name: "broker_retained_messages",
      help: "retained messages (counted on scrape)",
      registers,
      async collect() {
        const n = await sources.retained?.();
        if (n !== undefined) this.set(n);
      },
    }),
    emitterQueue: new Gauge({
      name: "broker_emitter_queue_length",
      help: "messages waiting in the routing emitter",
      registers,
      collect() {
        if (sources.emitterQueue) this.set(sources.emitterQueue());
      },
    }),
    emitterDeferred: new Counter({
      name: "broker_emitter_deferred_total",
      help: "times the routing emitter broke a synchronous chain (overload guard)",
      registers,
    }),
    jsonMirrored: new Counter({
      name: "broker_json_mirrored_total",
      help: "messages republished as JSON under json/… (MQTT_JSON_MIRROR), by whether they decoded",
      labelNames: ["decoded"] as const,
      registers,
    }),
  };
}

export type BrokerMetrics = ReturnType<typeof createBrokerMetrics>;
