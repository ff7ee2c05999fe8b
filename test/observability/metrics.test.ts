import { describe, expect, it } from "vitest";
import { getJson, postJson } from "../helpers/http.js";
import { parseMetrics, type Sample, sampleValue, scrape } from "../helpers/metrics.js";
import { useTestServer } from "../helpers/server.js";

const srv = useTestServer();

const requestSamples = (samples: Sample[]) => samples.filter((s) => s.name === "entity_requests_total");

describe("GET /metrics", () => {
  it("counts exactly the requests sent, per method, route template and status", async () => {
    const before = parseMetrics((await scrape(srv.url)).text);
    expect(requestSamples(before).filter((s) => s.labels.endpoint !== "/metrics")).toEqual([]);

    for (let i = 0; i < 5; i++) expect((await getJson(srv.url, "/v1/info")).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      expect((await postJson(srv.url, "/v1/objects/value", { elementIds: ["sensor-001"] })).status).toBe(200);
    }
    for (let i = 0; i < 4; i++)
      expect((await postJson(srv.url, "/v1/objects/value", { nope: 1 })).status).toBe(400);
    for (let i = 0; i < 2; i++)
      expect((await postJson(srv.url, "/v1/objects/value", "{not json")).status).toBe(400);
    for (let i = 0; i < 6; i++) expect((await getJson(srv.url, `/v1/no/such/thing/${i}`)).status).toBe(404);
    expect((await getJson(srv.url, "/health/live")).status).toBe(200);

    const samples = parseMetrics((await scrape(srv.url)).text);
    const count = (method: string, endpoint: string, status: string) =>
      sampleValue(samples, "entity_requests_total", { method, endpoint, status });
    expect(count("GET", "/info", "200")).toBe(5);
    expect(count("POST", "/objects/value", "200")).toBe(3);
    expect(count("POST", "/objects/value", "400")).toBe(6);
    expect(count("GET", "unmatched", "404")).toBe(6);
    expect(count("GET", "/health/live", "200")).toBe(1);
    // The scrape before this one is counted once it has been answered.
    expect(count("GET", "/metrics", "200")).toBe(1);
    const counted = requestSamples(samples).reduce((sum, s) => sum + s.value, 0);
    expect(counted).toBe(5 + 3 + 6 + 6 + 1 + 1);

    const durationCount = (method: string, endpoint: string) =>
      sampleValue(samples, "request_duration_seconds_count", { method, endpoint });
    expect(durationCount("GET", "/info")).toBe(5);
    expect(durationCount("POST", "/objects/value")).toBe(9);
    expect(durationCount("GET", "unmatched")).toBe(6);
    const histogramTotal = samples
      .filter((s) => s.name === "request_duration_seconds_count")
      .reduce((sum, s) => sum + s.value, 0);
    expect(histogramTotal).toBe(counted);
    // Buckets from 1 ms to 10 s, cumulative, ending in +Inf = _count.
    const buckets = samples.filter(
      (s) =>
        s.name === "request_duration_seconds_bucket" &&
        s.labels.method === "GET" &&
        s.labels.endpoint === "/info",
    );
    expect(buckets[0].labels.le).toBe("0.001");
    expect(buckets.map((b) => b.labels.le)).toContain("10");
    expect(buckets.at(-1)?.labels.le).toBe("+Inf");
    expect(buckets.at(-1)?.value).toBe(5);
  });

  it("never turns a raw path into a label value, even after 1,000 distinct unknown paths", async () => {
    const paths = Array.from({ length: 1000 }, (_, i) => `/v1/zz-unknown-${i}/x${i}?q=${i}`);
    for (let i = 0; i < paths.length; i += 25) {
      const statuses = await Promise.all(
        paths.slice(i, i + 25).map(async (p) => (await fetch(`${srv.url}${p}`)).status),
      );
      expect(statuses.every((s) => s === 404)).toBe(true);
    }
    const { text } = await scrape(srv.url);
    expect(text).not.toContain("zz-unknown");
    const samples = parseMetrics(text);
    const endpoints = new Set(
      samples.filter((s) => s.labels.endpoint !== undefined).map((s) => s.labels.endpoint),
    );
    for (const e of endpoints) expect(e === "unmatched" || /^\/[\w/:.*-]*$/.test(e)).toBe(true);
    expect(endpoints.size).toBeLessThan(40);
    expect(
      sampleValue(samples, "entity_requests_total", { method: "GET", endpoint: "unmatched", status: "404" }),
    ).toBe(1006);
  });

  it("exports the data-point, cache, connection and subscription metrics of the contract", async () => {
    const write = await postJson(
      srv.url,
      "/v1/objects/value",
      {
        updates: [
          {
            elementId: "sensor-001",
            value: { value: 20.5, quality: "Good", timestamp: new Date().toISOString() },
          },
        ],
      },
      { method: "PUT" },
    );
    expect(write.status).toBe(200);
    const samples = parseMetrics((await scrape(srv.url)).text);
    const names = new Set(samples.map((s) => s.name));
    for (const name of [
      "cache_hits_total",
      "cache_misses_total",
      "active_database_connections",
      "subscriptions_active",
      "sse_streams_open",
      "subscription_queued_updates",
      "subscription_dropped_updates_total",
    ]) {
      expect(names, name).toContain(name);
    }
    expect(sampleValue(samples, "active_database_connections")).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, "cache_misses_total", { cache_type: "value" })).toBeGreaterThan(0);
    expect(
      samples.some((s) => s.name === "data_points_written_total" && s.labels.entity_type && s.value >= 1),
    ).toBe(true);
  });

  it("includes the default process and Node.js metrics", async () => {
    const { text } = await scrape(srv.url);
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_heap_size_used_bytes",
      "nodejs_eventloop_lag_seconds",
      "nodejs_gc_duration_seconds",
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
  });

  it("answers in text format 0.0.4 by default and in OpenMetrics when Accept prefers it", async () => {
    const plain = await scrape(srv.url);
    expect(plain.type).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(plain.text).toContain("# TYPE entity_requests_total counter");

    const om = await scrape(
      srv.url,
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    );
    expect(om.type).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
    expect(om.text).toContain("# TYPE entity_requests counter");
    expect(om.text).toMatch(/^entity_requests_total\{method="GET",endpoint="\/info",status="200"\} 5$/m);
    expect(om.text.endsWith("# EOF\n")).toBe(true);

    // Rendering OpenMetrics must not rename anything for the next text-format scrape.
    const again = await scrape(srv.url, "text/plain;q=1, application/openmetrics-text;q=0.2");
    expect(again.type).toBe(plain.type);
    expect(again.text).toContain("# TYPE entity_requests_total counter");
    expect(again.text).toMatch(/^entity_requests_total\{method="GET",endpoint="\/info",status="200"\} 5$/m);
  });
});
