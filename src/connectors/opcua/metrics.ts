import { Counter, Gauge } from "prom-client";
import { registry } from "../../observability/metrics.js";

/**
 * The OPC UA connector's own metrics (observability contract §9), beside the framework's `connector_*`
 * ones. `connector` is one value per configured connector; `status` an OPC UA status code name.
 */

export const opcuaMonitoredItems = new Gauge({
  name: "opcua_monitored_items",
  help: "Variables an OPC UA connector monitors on its server",
  labelNames: ["connector"] as const,
  registers: [registry],
});

export const opcuaSessionState = new Gauge({
  name: "opcua_session_state",
  help: "1 while an OPC UA connector has an active session with its server, else 0",
  labelNames: ["connector"] as const,
  registers: [registry],
});

export const opcuaBadStatus = new Counter({
  name: "opcua_bad_status_total",
  help: "Values an OPC UA server reported with a Bad status, by status code name",
  labelNames: ["connector", "status"] as const,
  registers: [registry],
});
