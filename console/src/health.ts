import { authHeaders } from "./api.js";
import { h } from "./dom.js";
import { histogramQuantile, parsePrometheusText, type Scrape, sum } from "./prom.js";

const REFRESH_MS = 5000;

interface Snapshot {
  at: number;
  scrape: Scrape;
}

interface ReadyResult {
  status?: string;
  store?: string;
  /** Reported once connectors exist: by name, a state or an object with one. */
  connectors?: Record<string, unknown> | { name?: string; state?: string; status?: string }[];
}

/** The console's own polling is not traffic worth reporting. */
const ownPolling = (labels: Record<string, string>) =>
  !(labels.endpoint?.startsWith("/health/") || labels.endpoint === "/metrics");

/**
 * The status strip: readiness from `/health/ready`, and from `/metrics` (Prometheus text) request rate,
 * 5xx ratio and p95 latency over the last refresh interval, the cache hit ratio, subscriptions and SSE
 * streams, telemetry drops and store connections. `/metrics` may sit behind its own token or port; then
 * those fields say "not available" and nothing else is affected.
 */
export class HealthStrip {
  private previous: Snapshot | undefined;
  private timer: number | undefined;
  /** Off after a 401, 403 or 404: neither the key nor the server's setup change while the page lives. */
  private metricsReadable = true;

  constructor(private readonly strip: HTMLElement) {}

  start(): void {
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
  }

  stop(): void {
    window.clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    const [ready, metrics] = await Promise.all([readReady(), this.readMetrics()]);
    const chips: HTMLElement[] = [];
    if (ready.ok === undefined) chips.push(chip("server", "unreachable", "bad"));
    else
      chips.push(chip("server", ready.ok ? "ready" : "not ready", ready.ok ? "good" : "bad", ready.detail));
    if (ready.body?.store) chips.push(chip("store", ready.body.store));
    for (const [name, state] of connectorStates(ready.body?.connectors))
      chips.push(
        chip(`connector ${name}`, state, /^(up|connected|ok|running|ready)$/i.test(state) ? "good" : "bad"),
      );
    if (metrics === undefined) {
      chips.push(
        chip("metrics", "not available", "muted", "GET /metrics has its own token or port, or is off"),
      );
    } else {
      for (const [label, value, title] of summarize(metrics, this.previous))
        chips.push(chip(label, value, undefined, title));
      this.previous = metrics;
    }
    this.strip.replaceChildren(...chips);
    this.strip.dataset.updated = new Date().toISOString();
  }

  /** The scrape, or `undefined` when this key may not read it (its own token or port, or off). */
  private async readMetrics(): Promise<Snapshot | undefined> {
    if (!this.metricsReadable) return undefined;
    try {
      const res = await fetch("/metrics", { headers: { accept: "text/plain", ...authHeaders() } });
      if (res.status === 401 || res.status === 403 || res.status === 404) this.metricsReadable = false;
      if (!res.ok) return undefined;
      return { at: Date.now(), scrape: parsePrometheusText(await res.text()) };
    } catch {
      return undefined;
    }
  }
}

async function readReady(): Promise<{ ok: boolean | undefined; body?: ReadyResult; detail?: string }> {
  try {
    const res = await fetch("/health/ready", { headers: { accept: "application/json" } });
    const body = (await res.json()) as { result?: ReadyResult; responseDetail?: { detail?: string } };
    return { ok: res.ok, body: body.result, detail: body.responseDetail?.detail };
  } catch {
    return { ok: undefined };
  }
}

function connectorStates(connectors: ReadyResult["connectors"]): [string, string][] {
  if (connectors === undefined || connectors === null) return [];
  if (Array.isArray(connectors))
    return connectors.map((c, i) => [c.name ?? String(i + 1), String(c.state ?? c.status ?? "unknown")]);
  return Object.entries(connectors).map(([name, v]) => {
    if (typeof v === "string") return [name, v];
    const o = v as { state?: unknown; status?: unknown };
    return [name, String(o?.state ?? o?.status ?? "unknown")];
  });
}

function chip(label: string, value: string, tone?: "good" | "bad" | "muted", title?: string): HTMLElement {
  return h(
    "span",
    { class: `chip${tone ? ` ${tone}` : ""}`, "data-field": label, title },
    h("span", { class: "chip-label" }, label),
    h("span", { class: "chip-value" }, value),
  );
}

function latencyBuckets(scrape: Scrape): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const s of scrape.samples) {
    if (s.name !== "request_duration_seconds_bucket" || !ownPolling(s.labels)) continue;
    const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  return buckets;
}

function summarize(now: Snapshot, before: Snapshot | undefined): [string, string, string][] {
  const out: [string, string, string][] = [];
  const s = now.scrape;
  const requests = (x: Scrape) => sum(x, "entity_requests_total", ownPolling) ?? 0;
  const errors = (x: Scrape) =>
    sum(x, "entity_requests_total", (l) => ownPolling(l) && Number(l.status) >= 500) ?? 0;
  if (before !== undefined) {
    const seconds = (now.at - before.at) / 1000;
    const dRequests = requests(s) - requests(before.scrape);
    const dErrors = errors(s) - errors(before.scrape);
    out.push([
      "requests",
      `${(dRequests / seconds).toFixed(1)}/s`,
      "API requests per second since the last refresh",
    ]);
    out.push(["errors", dRequests > 0 ? percent(dErrors / dRequests) : "—", "5xx answers among them"]);
    const prior = latencyBuckets(before.scrape);
    const delta = new Map([...latencyBuckets(s)].map(([le, c]) => [le, c - (prior.get(le) ?? 0)]));
    const p95 = histogramQuantile(0.95, delta);
    out.push(["p95", p95 === undefined ? "—" : `${(p95 * 1000).toFixed(1)} ms`, "95th percentile latency"]);
  } else {
    out.push(["requests", "…", "measured from the next refresh on"]);
  }
  const hits = sum(s, "cache_hits_total");
  const misses = sum(s, "cache_misses_total");
  if (hits !== undefined || misses !== undefined) {
    const total = (hits ?? 0) + (misses ?? 0);
    out.push(["cache hits", total > 0 ? percent((hits ?? 0) / total) : "—", "since the server started"]);
  }
  out.push(["subscriptions", count(sum(s, "subscriptions_active")), "active subscriptions"]);
  out.push(["SSE streams", count(sum(s, "sse_streams_open")), "open streams"]);
  out.push([
    "telemetry drops",
    count(sum(s, "telemetry_dropped_total")),
    "log lines, spans, error reports dropped",
  ]);
  out.push(["store connections", count(sum(s, "active_database_connections")), "open store connections"]);
  return out;
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(ratio < 0.1 && ratio > 0 ? 2 : 1)}%`;
}

function count(value: number | undefined): string {
  return value === undefined ? "—" : String(Math.round(value));
}
