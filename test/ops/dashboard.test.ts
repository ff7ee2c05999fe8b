import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { scrape } from "../helpers/metrics.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import {
  ALERTS_FILE,
  allPanels,
  dashboardQueries,
  exportedNames,
  type Json,
  loadDashboard,
  metricNames,
  PROMETHEUS_SYNTHETIC,
} from "./tools.js";
import { openSubscription, trafficRound } from "./traffic.js";

const dashboard = loadDashboard();
const queries = dashboardQueries(dashboard);
// Grafana substitutes the data-source variable into the uid; the literal text is what the JSON holds.
const DS_UID = ["$", "{datasource}"].join("");

describe("Grafana dashboard model (ops/grafana/dashboards/i3xd.json)", () => {
  it("is a current-schema dashboard with a stable uid", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toBe("i3xd-overview");
    expect(dashboard.id).toBeNull();
  });

  it("has a Prometheus data-source variable and a multi-value instance variable", () => {
    const vars = new Map<string, Json>(dashboard.templating.list.map((v: Json) => [v.name, v]));
    const ds = vars.get("datasource");
    expect(ds.type).toBe("datasource");
    expect(ds.query).toBe("prometheus");
    const instance = vars.get("instance");
    expect(instance.type).toBe("query");
    expect(instance.datasource).toEqual({ type: "prometheus", uid: DS_UID });
    expect(instance.query.query).toBe('label_values(up{job="i3xd"}, instance)');
    expect(instance.multi).toBe(true);
    expect(instance.includeAll).toBe(true);
  });

  it("queries every panel and target through the datasource variable", () => {
    for (const p of allPanels(dashboard)) {
      if (p.type === "row") continue;
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: DS_UID });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource, `${p.title} ${t.refId}`).toEqual(p.datasource);
    }
    for (const a of dashboard.annotations.list) {
      if (a.expr !== undefined) expect(a.datasource).toEqual({ type: "prometheus", uid: DS_UID });
    }
  });

  it("filters every selector by job and by the instance variable", () => {
    for (const q of queries) {
      const withoutStrings = q.expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
      for (const name of metricNames(q.expr)) {
        // Each occurrence of a metric name is followed by its matchers.
        const bare = new RegExp(`(?<![\\w.])${name}(?!\\s*\\{)(?![\\w(])`);
        expect(bare.test(withoutStrings), `${q.panel}: ${name} without label matchers`).toBe(false);
      }
      const selectors = [...q.expr.matchAll(/[a-zA-Z_:][\w:]*\{([^}]*)\}/g)].map((m) => m[1]);
      expect(selectors.length, q.panel).toBeGreaterThan(0);
      for (const s of selectors) {
        expect(s, q.panel).toContain('job="i3xd"');
        expect(s, q.panel).toContain('instance=~"$instance"');
      }
    }
  });

  it("sets units and thresholds on every panel", () => {
    for (const p of allPanels(dashboard)) {
      if (p.type === "row") continue;
      const unit = p.type === "heatmap" ? p.options.yAxis.unit : p.fieldConfig.defaults.unit;
      expect(unit, p.title).toMatch(/\S/);
      if (p.type !== "heatmap")
        expect(p.fieldConfig.defaults.thresholds.steps.length, p.title).toBeGreaterThan(0);
    }
  });

  it("has the panels operators need", () => {
    const titles = allPanels(dashboard).map((p) => p.title);
    for (const t of [
      "Request rate by endpoint",
      "5xx error ratio by instance",
      "Latency p50 / p95 / p99",
      "Latency distribution",
      "Active store connections",
      "Cache hit ratio by cache",
      "Data points written by type",
      "Active subscriptions and SSE streams",
      "Queued subscription updates",
      "Dropped subscription updates",
      "Telemetry dropped by sink",
      "CPU",
      "Memory",
      "Event-loop lag",
    ]) {
      expect(titles).toContain(t);
    }
    expect(allPanels(dashboard).find((p) => p.title === "Latency distribution").type).toBe("heatmap");
  });

  it("lays panels out on the 24-column grid without overlaps and with unique ids", () => {
    const panels = allPanels(dashboard);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const cells = new Set<string>();
    for (const p of panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          const cell = `${i},${j}`;
          expect(cells.has(cell), `${p.title} overlaps at ${cell}`).toBe(false);
          cells.add(cell);
        }
      }
    }
  });
});

describe("metric names in the dashboard and the alert rules exist on a live /metrics", () => {
  let server: TestServer;
  let exported: Set<string>;

  beforeAll(async () => {
    server = await startTestServer();
    // Labelled series appear only once something was counted: requests, writes, cache look-ups, 404s.
    await openSubscription(server.url);
    for (let i = 0; i < 3; i++) await trafficRound(server.url);
    exported = exportedNames((await scrape(server.url)).text);
  });

  afterAll(async () => {
    await server?.close();
  });

  it("the linter finds the names in an expression (and not functions, labels or keywords)", () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le) (rate(request_duration_seconds_bucket{endpoint!~"/metrics"}[5m]))) > 0.5 and on (instance) up{job="i3xd"} == 1',
      ).sort(),
    ).toEqual(["request_duration_seconds_bucket", "up"]);
    expect(metricNames('sum(rate(http_requests_total{instance=~"$instance"}[$__rate_interval]))')).toEqual([
      "http_requests_total",
    ]);
  });

  it("the live scrape has the core series with labels", () => {
    for (const name of [
      "entity_requests_total",
      "request_duration_seconds_bucket",
      "data_points_written_total",
      "active_database_connections",
      "cache_hits_total",
      "cache_misses_total",
      "subscriptions_active",
      "process_cpu_seconds_total",
      "nodejs_eventloop_lag_p99_seconds",
    ]) {
      expect(exported).toContain(name);
    }
  });

  it("every dashboard expression uses only exported metric names", () => {
    const unknown = queries.flatMap((q) =>
      metricNames(q.expr)
        .filter((n) => !exported.has(n) && !PROMETHEUS_SYNTHETIC.has(n))
        .map((n) => `${q.panel} (${q.refId}): ${n}`),
    );
    expect(unknown).toEqual([]);
  });

  it("every alert expression uses only exported metric names (or the blackbox probe's)", () => {
    const rules: Json[] = parse(readFileSync(ALERTS_FILE, "utf8")).groups.flatMap((g: Json) => g.rules);
    const unknown = rules.flatMap((r) =>
      metricNames(r.expr)
        .filter((n) => !exported.has(n) && !PROMETHEUS_SYNTHETIC.has(n) && n !== "probe_success")
        .map((n) => `${r.alert}: ${n}`),
    );
    expect(unknown).toEqual([]);
  });
});
