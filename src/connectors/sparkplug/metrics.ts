import { Counter, Gauge } from "prom-client";
import { registry } from "../../observability/metrics.js";

/** Sparkplug B's own metrics (observability contract §9); `connector` is the connector's configured name. */

export const sparkplugRebirthRequests = new Counter({
  name: "sparkplug_rebirth_requests_total",
  help: "Rebirth requests (NCMD Node Control/Rebirth) sent to edge nodes, by reason",
  labelNames: ["connector", "reason"] as const,
  registers: [registry],
});

export const sparkplugSequenceGaps = new Counter({
  name: "sparkplug_sequence_gaps_total",
  help: "Sequence number gaps that outlasted the reorder timeout",
  labelNames: ["connector"] as const,
  registers: [registry],
});

export const sparkplugEdgeNodes = new Gauge({
  name: "sparkplug_edge_nodes",
  help: "Edge nodes the host application knows, by state (online, offline)",
  labelNames: ["connector", "state"] as const,
  registers: [registry],
});
