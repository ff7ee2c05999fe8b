import type { FastifyPluginAsync } from "fastify";
import { collectDefaultMetrics, type MetricObjectWithValues, type MetricValue, Registry } from "prom-client";
import { activeDatabaseConnections, registry } from "../observability/metrics.js";
import type { AppDeps } from "./deps.js";

const PROMETHEUS_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
const OPENMETRICS_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

let defaultsRegistered = false;

/** Process and Node.js metrics (CPU, memory, heap, event-loop lag, GC) on the one registry, once. */
export function registerDefaultMetrics(): void {
  if (defaultsRegistered) return;
  defaultsRegistered = true;
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
}

/**
 * `GET /metrics`: the Prometheus text format (0.0.4), or OpenMetrics 1.0 when the `Accept` header
 * prefers it (as Prometheus itself does). Outside `/v1`.
 */
export const metricsRoutes: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  const { store } = deps;
  registerDefaultMetrics();

  app.get("/metrics", { config: { scope: "metrics" }, schema: { hide: true } }, async (request, reply) => {
    // Read at scrape time: the store knows its connections, nothing needs to keep a gauge in step.
    activeDatabaseConnections.set(store.connectionCount());
    if (prefersOpenMetrics(request.headers.accept)) {
      reply.type(OPENMETRICS_TYPE);
      return renderOpenMetrics(await registry.getMetricsAsJSON());
    }
    reply.type(PROMETHEUS_TYPE);
    return registry.metrics();
  });
};

/** True when the client ranks OpenMetrics above the 0.0.4 text format (q-values honoured). */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (!accept?.includes("openmetrics")) return false;
  let openMetrics = -1;
  let text = -1;
  for (const part of accept.split(",")) {
    const [type, ...params] = part.trim().split(";");
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split("=");
      if (k === "q") q = Number(v);
    }
    if (!(q > 0)) continue;
    const t = type.trim().toLowerCase();
    if (t === "application/openmetrics-text") openMetrics = Math.max(openMetrics, q);
    else if (t === "text/plain" || t === "*/*" || t === "text/*") text = Math.max(text, q);
  }
  return openMetrics >= 0 && openMetrics >= text;
}

/**
 * OpenMetrics 1.0 text from the registry's values. prom-client can render it only by switching the whole
 * registry over, and doing so renames every counter in place (it strips `_total`), which would then break
 * the 0.0.4 output; so this format is written here instead.
 */
export function renderOpenMetrics(metrics: readonly MetricObjectWithValues<MetricValue<string>>[]): string {
  const out: string[] = [];
  for (const metric of metrics) {
    const type = String(metric.type);
    const isCounter = type === "counter";
    const family = isCounter ? metric.name.replace(/_total$/, "") : metric.name;
    out.push(`# TYPE ${family} ${type}`);
    out.push(`# HELP ${family} ${escapeHelp(metric.help)}`);
    for (const v of metric.values) {
      const sample = v as MetricValue<string> & { metricName?: string };
      let name = sample.metricName ?? metric.name;
      if (isCounter && !name.endsWith("_total")) name = `${name}_total`;
      out.push(`${name}${formatLabels(sample.labels)} ${formatValue(sample.value)}`);
    }
  }
  out.push("# EOF");
  return `${out.join("\n")}\n`;
}

function formatLabels(labels: Record<string, string | number | undefined>): string {
  const parts: string[] = [];
  for (const key in labels) {
    const value = labels[key];
    if (value === undefined) continue;
    parts.push(`${key}="${escapeLabel(String(value))}"`);
  }
  return parts.length > 0 ? `{${parts.join(",")}}` : "";
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

function escapeLabel(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}
