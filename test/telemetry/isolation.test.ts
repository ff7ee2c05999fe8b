import { afterEach, describe, expect, it } from "vitest";
import { type Sample, sampleValue } from "../helpers/metrics.js";
import { type ChildServer, inParallel, startChildServer } from "./child.js";
import { closedPort, startStuckBackends, waitFor } from "./receivers.js";

const SINKS = ["otlp", "sentry", "loki", "logstash"] as const;

function dropped(samples: Sample[], sink: string): number {
  return sampleValue(samples, "telemetry_dropped_total", { sink });
}

/** Sends `total` requests (`concurrency` at a time) and tallies the answers by status. */
async function burst(total: number, concurrency: number, send: (i: number) => Promise<Response>) {
  const statuses: Record<number, number> = {};
  const failures: string[] = [];
  await inParallel(total, concurrency, async (i) => {
    try {
      const res = await send(i);
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    } catch (err) {
      failures.push(String(err));
    }
  });
  return { statuses, failures };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("telemetry back-ends cannot hurt requests", () => {
  it("with every sink at a closed port, 5,000 requests all succeed and the dropped counts rise", async () => {
    const [otlpPort, sentryPort, lokiPort, logstashPort] = await Promise.all([
      closedPort(),
      closedPort(),
      closedPort(),
      closedPort(),
    ]);
    const server: ChildServer = await startChildServer({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`,
      OTEL_BSP_SCHEDULE_DELAY: "200",
      SENTRY_DSN: `http://publickey@127.0.0.1:${sentryPort}/1`,
      LOKI_URL: `http://127.0.0.1:${lokiPort}`,
      LOGSTASH_HOST: "127.0.0.1",
      LOGSTASH_PORT: String(logstashPort),
      TELEMETRY_BUFFER_MAX: "500",
      TELEMETRY_FLUSH_TIMEOUT_MS: "1000",
      I3XD_TEST_FAULTS: "1",
    });
    cleanups.push(() => server.stop());

    const reads = await burst(5000, 16, (i) =>
      fetch(`${server.url}/v1/objects/list`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": `burst-${i}` },
        body: JSON.stringify({ elementIds: ["pump-101"] }),
      }),
    );
    expect(reads).toEqual({ statuses: { 200: 5000 }, failures: [] });
    // Forced 5xx: each is answered at once although Sentry is unreachable.
    const faults = await burst(20, 4, () => fetch(`${server.url}/v1/_test/fault`, { method: "POST" }));
    expect(faults).toEqual({ statuses: { 500: 20 }, failures: [] });

    const samples = await waitFor("drops counted for every sink", async () => {
      const s = await server.metrics();
      return SINKS.every((sink) => dropped(s, sink) > 0) && s;
    });
    // Log lines: 10,000+ offered per sink, at most the bound (plus one batch for Loki) kept.
    expect(dropped(samples, "loki")).toBeGreaterThan(5000);
    expect(dropped(samples, "logstash")).toBeGreaterThan(5000);
    expect(sampleValue(samples, "telemetry_buffered", { sink: "loki" })).toBeLessThanOrEqual(1000);
    expect(sampleValue(samples, "telemetry_buffered", { sink: "logstash" })).toBeLessThanOrEqual(500);
    // Spans: far more than the span queue (2048) holds, none exported.
    expect(dropped(samples, "otlp")).toBeGreaterThan(5000);
    expect(dropped(samples, "sentry")).toBeGreaterThan(0);

    // Still healthy, and shutdown does not wait for dead back-ends beyond its deadline.
    expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
    expect(await server.stop()).toBe(0);
  }, 120_000);

  it("with sinks that accept but never read or answer, memory stays bounded and the excess is dropped", async () => {
    const stuck = await startStuckBackends();
    const { loki, logstash } = stuck;
    cleanups.push(() => stuck.close());
    const server: ChildServer = await startChildServer({
      ...stuck.env,
      TELEMETRY_BUFFER_MAX: "200",
      TELEMETRY_FLUSH_TIMEOUT_MS: "1000",
      I3XD_TEST_FAULTS: "1",
      // A heap far smaller than what the burst offers the sinks: anything that buffered without bound
      // would run the process out of memory instead of dropping.
      NODE_OPTIONS: "--max-old-space-size=256",
    });
    cleanups.push(() => server.stop());

    // 8 KiB paths make 8 KiB log lines (and span attributes): the burst below offers each log sink about
    // 50 MiB, which an unbounded buffer would have to hold.
    const junk = "x".repeat(8 * 1024);
    const send = (i: number) => fetch(`${server.url}/v1/no-such-${i}-${junk}`);

    const result = await burst(3000, 16, send);
    expect(result).toEqual({ statuses: { 404: 3000 }, failures: [] });
    const faults = await burst(100, 8, () => fetch(`${server.url}/v1/_test/fault`, { method: "POST" }));
    expect(faults).toEqual({ statuses: { 500: 100 }, failures: [] });

    const samples = await waitFor("drops counted for every sink", async () => {
      const s = await server.metrics();
      return SINKS.every((sink) => dropped(s, sink) > 0) && s;
    });
    expect(logstash.connections()).toBe(1);
    expect(loki.requestCount()).toBeGreaterThan(0);
    expect(sampleValue(samples, "telemetry_buffered", { sink: "loki" })).toBeLessThanOrEqual(400);
    expect(sampleValue(samples, "telemetry_buffered", { sink: "logstash" })).toBeLessThanOrEqual(400);
    expect(dropped(samples, "loki")).toBeGreaterThan(4_000);
    expect(dropped(samples, "logstash")).toBeGreaterThan(2_000);
    // Sentry's transport holds 64 reports in flight; the rest of the 100 are dropped and counted.
    expect(dropped(samples, "sentry")).toBeGreaterThanOrEqual(30);
    // The shipping worker's heap (its own isolate) holds the log buffers: it stays small. (Heap used, not
    // RSS, which the allocator keeps after any burst, with or without telemetry.)
    const MiB = 1024 * 1024;
    expect(sampleValue(samples, "telemetry_shipping_heap_bytes")).toBeGreaterThan(0);
    expect(sampleValue(samples, "telemetry_shipping_heap_bytes")).toBeLessThan(48 * MiB);
    // The main thread came through on its small heap and still answers.
    expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
    expect(await server.stop()).toBe(0);
  }, 180_000);
});
