import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSse } from "../helpers/sse.js";
import { type ChildServer, startChildServer } from "./child.js";
import { type ReceivedSpan, startOtlpReceiver, waitFor } from "./receivers.js";

const SERVER = 2;
const PRODUCER = 4;

function newTraceparent() {
  const traceId = randomBytes(16).toString("hex");
  const parentId = randomBytes(8).toString("hex");
  return { traceId, parentId, header: `00-${traceId}-${parentId}-01` };
}

async function post(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  method = "POST",
) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

/** True when `span` descends from `ancestor` through spans of the same trace. */
function descendsFrom(span: ReceivedSpan, ancestor: ReceivedSpan, all: ReceivedSpan[]): boolean {
  const byId = new Map(all.map((s) => [s.spanId, s]));
  let cur: ReceivedSpan | undefined = span;
  for (let hops = 0; cur && hops < 20; hops++) {
    if (cur.parentSpanId === ancestor.spanId) return true;
    cur = byId.get(cur.parentSpanId);
  }
  return false;
}

describe("tracing over OTLP/HTTP (JSON)", () => {
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let server: ChildServer;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    server = await startChildServer({
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=acceptance",
      I3XD_TEST_FAULTS: "1",
    });
  });
  afterAll(async () => {
    await server?.stop();
    await otlp?.close();
  });

  it("continues the caller's trace with a server span named by route template, with child store spans", async () => {
    const tp = newTraceparent();
    const res = await post(
      server.url,
      "/v1/objects/value",
      { elementIds: ["pump-101"], maxDepth: 1 },
      { traceparent: tp.header, "x-request-id": "trace-accept-1" },
    );
    expect(res.status).toBe(200);

    // The response names the trace, so a client can find it.
    const returned = res.headers.get("traceparent") ?? "";
    expect(returned).toMatch(new RegExp(`^00-${tp.traceId}-[0-9a-f]{16}-01$`));
    expect(res.headers.get("server-timing")).toBe(`traceparent;desc="${returned}"`);

    const spans = await waitFor("server and store spans", () => {
      const mine = otlp.spans().filter((s) => s.traceId === tp.traceId);
      return (
        mine.some((s) => s.kind === SERVER) && mine.some((s) => s.name === "repository.get_values") && mine
      );
    });
    const serverSpan = spans.find((s) => s.kind === SERVER) as ReceivedSpan;
    expect(serverSpan.name).toBe("POST /v1/objects/value");
    expect(serverSpan.parentSpanId).toBe(tp.parentId);
    expect(returned.split("-")[2]).toBe(serverSpan.spanId);
    expect(serverSpan.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": "/v1/objects/value",
      "http.response.status_code": 200,
      "url.path": "/v1/objects/value",
      "url.scheme": "http",
      "request.id": "trace-accept-1",
    });
    expect(serverSpan.resource).toMatchObject({
      "service.name": "i3xd",
      "deployment.environment.name": "acceptance",
    });

    // Store reads below the server span, with what they were asked for.
    const entity = spans.find(
      (s) => s.name === "repository.get_entity" && s.attributes["entity.id"] === "pump-101",
    );
    expect(entity, JSON.stringify(spans.map((s) => [s.name, s.attributes]))).toBeDefined();
    expect(entity?.attributes["entity.type"]).toBe("pump-type");
    const values = spans.filter((s) => s.name === "repository.get_values");
    expect(values.length).toBeGreaterThan(0);
    for (const s of spans.filter((x) => x.name.startsWith("repository.") || x.name === "cache.lookup")) {
      expect(descendsFrom(s, serverSpan, spans), s.name).toBe(true);
    }
    // Cache look-ups are spans too; a miss shows the repository read below it.
    const lookups = spans.filter((s) => s.name === "cache.lookup");
    expect(lookups.length).toBeGreaterThan(0);
    expect(lookups.map((s) => s.attributes["cache.type"])).toContain("object");
    const missed = lookups.find((s) => Number(s.attributes["cache.misses"]) > 0) as ReceivedSpan;
    expect(spans.some((s) => s.name.startsWith("repository.") && s.parentSpanId === missed.spanId)).toBe(
      true,
    );
  });

  it("records the cache look-ups of a sampled read the cache answers whole, below its server span", async () => {
    const body = { elementIds: ["tank-201", "pump-101"] };
    // The first read fills the cache; the second is answered from it.
    await post(server.url, "/v1/objects/value", body, { traceparent: newTraceparent().header });
    const tp = newTraceparent();
    const res = await post(server.url, "/v1/objects/value", body, { traceparent: tp.header });
    expect(res.status).toBe(200);

    const spans = await waitFor("server span and both look-ups", () => {
      const mine = otlp.spans().filter((s) => s.traceId === tp.traceId);
      return (
        mine.some((s) => s.kind === SERVER) &&
        mine.filter((s) => s.name === "cache.lookup").length === 2 &&
        mine
      );
    });
    const serverSpan = spans.find((s) => s.kind === SERVER) as ReceivedSpan;
    expect(spans.filter((s) => s.name.startsWith("repository."))).toEqual([]);
    const lookups = spans.filter((s) => s.name === "cache.lookup");
    expect(
      lookups
        .map((s) => s.attributes)
        .sort((a, b) => String(a["cache.type"]).localeCompare(String(b["cache.type"]))),
    ).toEqual([
      { "cache.type": "object", "cache.requested": 2, "cache.misses": 0, "cache.hits": 2, "cache.hit": true },
      { "cache.type": "value", "cache.requested": 2, "cache.misses": 0, "cache.hits": 2, "cache.hit": true },
    ]);
    // The SDK anchors each span's clock to Date.now() when the span starts, in whole milliseconds, so
    // times of different spans compare only to within a millisecond.
    const ms = 1_000_000n;
    for (const s of lookups) {
      expect(s.parentSpanId).toBe(serverSpan.spanId);
      expect(s.startTimeUnixNano + ms).toBeGreaterThanOrEqual(serverSpan.startTimeUnixNano);
      expect(s.endTimeUnixNano).toBeGreaterThanOrEqual(s.startTimeUnixNano);
      expect(s.endTimeUnixNano).toBeLessThanOrEqual(serverSpan.endTimeUnixNano + ms);
    }
  });

  it("puts the request's trace_id and span_id into every log line of that request", async () => {
    const tp = newTraceparent();
    const res = await post(
      server.url,
      "/v1/objects/list",
      { elementIds: ["pump-101", "tank-201"] },
      { traceparent: tp.header, "x-request-id": "trace-accept-logs" },
    );
    expect(res.status).toBe(200);
    const lines = await waitFor("both request lines", () => {
      const mine = server.lines().filter((l) => l.request_id === "trace-accept-logs");
      return mine.some((l) => l.message === "Request completed") && mine;
    });
    expect(lines.map((l) => l.message)).toEqual(
      expect.arrayContaining(["Request started", "Request completed"]),
    );
    for (const l of lines) {
      expect(l.trace_id, l.message).toBe(tp.traceId);
      expect(l.span_id, l.message).toMatch(/^[0-9a-f]{16}$/);
    }
    // The ids in the log are those of the request's server span.
    const serverSpan = await waitFor("the server span", () =>
      otlp.spans().find((s) => s.traceId === tp.traceId && s.kind === SERVER),
    );
    expect(lines[0].span_id).toBe(serverSpan.spanId);
  });

  it("starts a new trace for a request without traceparent and records history reads with their range", async () => {
    const res = await post(server.url, "/v1/objects/history", {
      elementIds: ["pump-101-flow", "sensor-001"],
      startTime: new Date(Date.now() - 3_600_000).toISOString(),
      endTime: new Date().toISOString(),
    });
    expect(res.status).toBe(200);
    const traceId = (res.headers.get("traceparent") ?? "").split("-")[1];
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const spans = await waitFor("history spans", () => {
      const mine = otlp.spans().filter((s) => s.traceId === traceId);
      // The server span ends after the response is sent, so it may come in a later export batch.
      return (
        mine.some((s) => s.name === "repository.get_history") && mine.some((s) => s.kind === SERVER) && mine
      );
    });
    const server_ = spans.find((s) => s.kind === SERVER) as ReceivedSpan;
    expect(server_.name).toBe("POST /v1/objects/history");
    expect(server_.parentSpanId).toBe("");
    const history = spans.find((s) => s.name === "repository.get_history") as ReceivedSpan;
    expect(history.attributes["history.element_count"]).toBe(2);
    expect(history.attributes["history.start"]).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(history.attributes["history.end"]).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(Number(history.attributes["history.point_count"])).toBeGreaterThan(0);
  });

  it("traces a write and the SSE delivery batch it causes, in one trace", async () => {
    const sub = await post(server.url, "/v1/subscriptions", { clientId: "tracer", displayName: "t" });
    const subscriptionId = sub.body.result.subscriptionId as string;
    await post(server.url, "/v1/subscriptions/register", {
      clientId: "tracer",
      subscriptionId,
      elementIds: ["sensor-001"],
    });
    const stream = await openSse(`${server.url}/v1/subscriptions/stream`, {
      clientId: "tracer",
      subscriptionId,
    });
    try {
      expect(stream.status).toBe(200);
      const tp = newTraceparent();
      const write = await post(
        server.url,
        "/v1/objects/value",
        { updates: [{ elementId: "sensor-001", value: { value: 20.25, quality: "Good" } }] },
        { traceparent: tp.header },
        "PUT",
      );
      expect(write.status).toBe(200);
      await stream.waitFor(() => stream.events.length > 0);
      const spans = await waitFor("delivery span", () => {
        const mine = otlp.spans().filter((s) => s.traceId === tp.traceId);
        return mine.some((s) => s.name === "subscription.deliver") && mine;
      });
      const writeSpan = spans.find((s) => s.kind === SERVER) as ReceivedSpan;
      expect(writeSpan.name).toBe("PUT /v1/objects/value");
      expect(spans.some((s) => s.name === "repository.write_points")).toBe(true);
      const delivery = spans.find((s) => s.name === "subscription.deliver") as ReceivedSpan;
      expect(delivery.kind).toBe(PRODUCER);
      // Only a prefix: the full id is half of what grants access to the subscription.
      expect(delivery.attributes).toMatchObject({
        "subscription.id": `${subscriptionId.slice(0, 6)}…`,
        "subscription.updates": 1,
      });
      expect(descendsFrom(delivery, writeSpan, spans)).toBe(true);
    } finally {
      stream.close();
    }
  });

  it("marks a 5xx server span as an error with its exception, and leaves a 4xx span unmarked", async () => {
    const fault = newTraceparent();
    const failed = await post(server.url, "/v1/_test/fault", {}, { traceparent: fault.header });
    expect(failed.status).toBe(500);
    const rejected = newTraceparent();
    const bad = await post(
      server.url,
      "/v1/objects/value",
      { elementIds: "pump-101" },
      {
        traceparent: rejected.header,
      },
    );
    expect(bad.status).toBe(400);
    const serverSpanOf = (traceId: string) =>
      waitFor(`server span of ${traceId}`, () =>
        otlp.spans().find((s) => s.traceId === traceId && s.kind === SERVER),
      );
    const failedSpan = await serverSpanOf(fault.traceId);
    expect(failedSpan.name).toBe("POST /v1/_test/fault");
    expect(failedSpan.statusCode).toBe(2);
    expect(failedSpan.attributes).toMatchObject({
      "http.response.status_code": 500,
      "error.type": "500",
    });
    const badSpan = await serverSpanOf(rejected.traceId);
    expect(badSpan.attributes["http.response.status_code"]).toBe(400);
    expect(badSpan.statusCode).toBe(0);
    expect(badSpan.attributes["error.type"]).toBeUndefined();
  });

  it("masks key-shaped values in the server span's url and user agent attributes", async () => {
    const secret = randomBytes(32).toString("base64url");
    const key = `i3xd_0123456789ab_${secret}`;
    const tp = newTraceparent();
    const res = await fetch(`${server.url}/v1/objects/${key}?k=${key}`, {
      headers: { traceparent: tp.header, "user-agent": `probe/${key}` },
    });
    expect(res.status).toBe(404);
    const span = await waitFor("the server span", () =>
      otlp.spans().find((s) => s.traceId === tp.traceId && s.kind === SERVER),
    );
    expect(JSON.stringify(span.attributes)).not.toContain(secret);
    expect(span.attributes["url.path"]).toBe("/v1/objects/i3xd_0123456789ab_[REDACTED]");
    expect(span.attributes["url.query"]).toBe("k=i3xd_0123456789ab_[REDACTED]");
    expect(span.attributes["user_agent.original"]).toBe("probe/i3xd_0123456789ab_[REDACTED]");
  });

  it("does not trace health probes and scrapes", async () => {
    const before = otlp.spans().length;
    const res = await fetch(`${server.url}/health/live`);
    expect(res.status).toBe(200);
    expect(res.headers.get("traceparent")).toBeNull();
    await fetch(`${server.url}/metrics`);
    // A traced request afterwards proves the exporter has flushed everything before it.
    const tp = newTraceparent();
    await post(server.url, "/v1/objects/list", { elementIds: ["pump-101"] }, { traceparent: tp.header });
    await waitFor("the later request's span", () => otlp.spans().some((s) => s.traceId === tp.traceId));
    const probes = otlp
      .spans()
      .slice(before)
      .filter((s) => String(s.attributes["url.path"] ?? "").match(/^\/(health|metrics)/));
    expect(probes).toEqual([]);
  });
});

describe("tracing over OTLP/HTTP (protobuf, the default) with standard OTEL_* settings", () => {
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let server: ChildServer;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    server = await startChildServer({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${otlp.url}/v1/traces`,
      OTEL_SERVICE_NAME: "pump-station-gateway",
      OTEL_BSP_SCHEDULE_DELAY: "100",
      // Parent-based: a caller that sampled is followed; a new trace is sampled at ratio 0, so never.
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0",
    });
  });
  afterAll(async () => {
    await server?.stop();
    await otlp?.close();
  });

  it("exports protobuf spans with the configured service name, honouring the sampler", async () => {
    const tp = newTraceparent();
    const sampled = await post(
      server.url,
      "/v1/objects/list",
      { elementIds: ["pump-101"] },
      { traceparent: tp.header },
    );
    expect(sampled.status).toBe(200);
    const unsampled = await post(server.url, "/v1/objects/list", { elementIds: ["pump-101"] });
    expect(unsampled.status).toBe(200);
    // Not sampled: the trace is still named in the response, with the sampled flag off.
    const unsampledTrace = (unsampled.headers.get("traceparent") ?? "").split("-");
    expect(unsampledTrace[3]).toBe("00");

    const spans = await waitFor("protobuf spans", () => {
      const mine = otlp.spans().filter((s) => s.traceId === tp.traceId);
      return mine.some((s) => s.kind === SERVER) && mine;
    });
    expect(otlp.contentTypes().every((t) => t.startsWith("application/x-protobuf"))).toBe(true);
    const serverSpan = spans.find((s) => s.kind === SERVER) as ReceivedSpan;
    expect(serverSpan.name).toBe("POST /v1/objects/list");
    expect(serverSpan.parentSpanId).toBe(tp.parentId);
    expect(serverSpan.resource["service.name"]).toBe("pump-station-gateway");
    expect(serverSpan.attributes["http.response.status_code"]).toBe(200);
    expect(spans.some((s) => s.name === "repository.get_entity" || s.name === "cache.lookup")).toBe(true);
    expect(otlp.spans().some((s) => s.traceId === unsampledTrace[1])).toBe(false);
  });

  it("still names the trace in the log lines of a request that was not sampled", async () => {
    const res = await post(
      server.url,
      "/v1/objects/value",
      { elementIds: ["sensor-001"] },
      { "x-request-id": "unsampled-logs" },
    );
    expect(res.status).toBe(200);
    const [, traceId, spanId, flags] = (res.headers.get("traceparent") ?? "").split("-");
    expect(flags).toBe("00");
    const lines = await waitFor("both request lines", () => {
      const mine = server.lines().filter((l) => l.request_id === "unsampled-logs");
      return mine.some((l) => l.message === "Request completed") && mine;
    });
    for (const l of lines) {
      expect(l.trace_id, l.message).toBe(traceId);
      expect(l.span_id, l.message).toBe(spanId);
    }
  });
});
