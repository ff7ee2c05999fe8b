import { spawn } from "node:child_process";
import { renameSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey } from "../../src/security/keys.js";
import { type ChildServer, inParallel, startChildServer } from "./child.js";
import { startOtlpReceiver, startSentryReceiver, waitFor } from "./receivers.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SERVER = 2;

describe("Sentry error reports, next to our own OpenTelemetry tracing", () => {
  let sentry: Awaited<ReturnType<typeof startSentryReceiver>>;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let server: ChildServer;
  const statuses: Record<string, number> = {};

  beforeAll(async () => {
    sentry = await startSentryReceiver();
    otlp = await startOtlpReceiver();
    // With an API key configured, requests are authenticated: reports and spans name the key as the user.
    const { token, entry } = await createKey("line-7-gateway", ["read", "write"]);
    const auth = { authorization: `Bearer ${token}` };
    server = await startChildServer({
      I3XD_API_KEYS: JSON.stringify([entry]),
      SENTRY_DSN: sentry.dsn,
      SENTRY_ENVIRONMENT: "acceptance",
      // Sentry's own tracing fully on: it must still leave request spans to our pipeline.
      SENTRY_TRACES_SAMPLE_RATE: "1",
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "100",
      I3XD_TEST_FAULTS: "1",
    });

    // The same fault three times: three requests, three reports (Sentry would merge look-alikes by default).
    for (const n of [1, 2, 3]) {
      const fault = await fetch(`${server.url}/v1/_test/fault`, {
        method: "POST",
        headers: { ...auth, "x-request-id": `fault-request-${n}` },
      });
      statuses[`fault${n}`] = fault.status;
    }
    statuses.notFound = (
      await fetch(`${server.url}/v1/no-such-endpoint`, { headers: { ...auth, "x-request-id": "nf-1" } })
    ).status;
    statuses.badRequest = (
      await fetch(`${server.url}/v1/objects/value`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json", "x-request-id": "bad-1" },
        body: "{not json",
      })
    ).status;
    statuses.ok = (
      await fetch(`${server.url}/v1/objects/list`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ elementIds: ["pump-101"] }),
      })
    ).status;
    // The store goes away: the readiness probe answers 503, which is its job, not a failure to report.
    const file = path.join(server.dataDir, "i3xd.sqlite");
    renameSync(file, `${file}.away`);
    statuses.notReady = (await fetch(`${server.url}/health/ready`)).status;
    renameSync(`${file}.away`, file);
    statuses.unauthenticated = (
      await fetch(`${server.url}/v1/namespaces`, { headers: { "x-request-id": "anon-1" } })
    ).status;
    // Graceful shutdown flushes Sentry's queue: after it, every report that will ever arrive has arrived.
    statuses.exit = (await server.stop()) ?? -1;
  });
  afterAll(async () => {
    await server?.stop();
    await sentry?.close();
    await otlp?.close();
  });

  it("starts cleanly with both (no Fastify decorator clash) and serves every request as usual", () => {
    expect(server.stderr()).not.toContain("FST_ERR_DEC_ALREADY_PRESENT");
    expect(statuses).toEqual({
      fault1: 500,
      fault2: 500,
      fault3: 500,
      notFound: 404,
      badRequest: 400,
      ok: 200,
      notReady: 503,
      unauthenticated: 401,
      exit: 0,
    });
  });

  it("reports each 5xx exactly once, with the exception and the request's id, route, method and status", () => {
    const events = sentry.events();
    expect(events.map((e) => e.tags?.request_id).sort()).toEqual([
      "fault-request-1",
      "fault-request-2",
      "fault-request-3",
    ]);
    const event = events.find((e) => e.tags.request_id === "fault-request-1");
    expect(event.exception.values[0]).toMatchObject({
      type: "Error",
      value: "Fault injected by POST /v1/_test/fault",
    });
    expect(event.exception.values[0].stacktrace.frames.length).toBeGreaterThan(0);
    expect(event.tags).toMatchObject({
      request_id: "fault-request-1",
      route: "/v1/_test/fault",
      method: "POST",
      status_code: "500",
      user_id: "line-7-gateway",
    });
    expect(event.user?.id).toBe("line-7-gateway");
    expect(event.tags.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(event.environment).toBe("acceptance");
    expect(event.release).toMatch(/^i3xd@\d+\.\d+\.\d+/);
  });

  it("never reports 4xx", () => {
    const ids = sentry.events().map((e) => e.tags?.request_id);
    expect(ids).not.toContain("nf-1");
    expect(ids).not.toContain("bad-1");
    expect(ids).not.toContain("anon-1");
  });

  it("leaves tracing to our pipeline: the failed request's server span reached the OTLP receiver", async () => {
    const traceId = sentry.events().find((e) => e.tags.request_id === "fault-request-1").tags.trace_id;
    const serverSpan = await waitFor("the fault's server span", () =>
      otlp.spans().find((s) => s.traceId === traceId && s.kind === SERVER),
    );
    expect(serverSpan?.name).toBe("POST /v1/_test/fault");
    expect(serverSpan?.attributes["http.response.status_code"]).toBe(500);
    expect(serverSpan?.statusCode).toBe(2);
    expect(serverSpan?.attributes["request.id"]).toBe("fault-request-1");
    expect(serverSpan?.attributes["enduser.id"]).toBe("line-7-gateway");
  });
  it("makes Sentry transactions from our own recorded server spans, one per request, same trace ids", async () => {
    const transactions = sentry
      .envelopes()
      .flat()
      .filter((i) => i.type === "transaction")
      .map((i) => i.payload);
    const list = transactions.filter((t) => t.transaction === "POST /v1/objects/list");
    expect(list).toHaveLength(1);
    const trace = list[0].contexts.trace;
    expect(trace.op).toBe("http.server");
    expect(trace.status).toBe("ok");
    const serverSpan = await waitFor("the list request's server span", () =>
      otlp.spans().find((s) => s.kind === SERVER && s.name === "POST /v1/objects/list"),
    );
    expect(trace.trace_id).toBe(serverSpan.traceId);
    expect(trace.span_id).toBe(serverSpan.spanId);
    const faults = transactions.filter((t) => t.transaction === "POST /v1/_test/fault");
    expect(faults.map((t) => t.contexts.trace.status)).toEqual([
      "internal_error",
      "internal_error",
      "internal_error",
    ]);
    // Sentry records no span of its own: every transaction is one of our server spans.
    const ourSpanIds = new Set(otlp.spans().map((s) => s.spanId));
    for (const t of transactions) expect(ourSpanIds.has(t.contexts.trace.span_id)).toBe(true);
  });
});

describe("Sentry alone, at its default traces sample rate", () => {
  let sentry: Awaited<ReturnType<typeof startSentryReceiver>>;
  let server: ChildServer;
  let exitCode: number | null = null;

  beforeAll(async () => {
    sentry = await startSentryReceiver();
    const { token, entry } = await createKey("press-4-historian", ["read"]);
    const auth = { authorization: `Bearer ${token}` };
    // Only the DSN: what an operator who turns error tracking on gets. No OTLP endpoint.
    server = await startChildServer({
      I3XD_API_KEYS: JSON.stringify([entry]),
      SENTRY_DSN: sentry.dsn,
      I3XD_TEST_FAULTS: "1",
    });
    await inParallel(40, 4, async (i) => {
      const res = await fetch(`${server.url}/v1/objects/value`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json", "x-request-id": `ok-${i}` },
        body: JSON.stringify({ elementIds: ["pump-101"] }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    });
    const clientErrors = [
      await fetch(`${server.url}/v1/objects/value`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json", "x-request-id": "bad-json" },
        body: "{not json",
      }),
      await fetch(`${server.url}/v1/no-such-route`, { headers: { ...auth, "x-request-id": "no-route" } }),
      await fetch(`${server.url}/v1/namespaces`, { headers: { "x-request-id": "no-key" } }),
    ];
    expect(clientErrors.map((r) => r.status)).toEqual([400, 404, 401]);
    const fault = await fetch(`${server.url}/v1/_test/fault`, {
      method: "POST",
      headers: { ...auth, "x-request-id": "the-one-fault" },
    });
    expect(fault.status).toBe(500);
    // Graceful shutdown flushes Sentry: whatever it was going to send has been sent after this.
    exitCode = await server.stop();
  });
  afterAll(async () => {
    await server?.stop();
    await sentry?.close();
  });

  it("sends exactly one envelope item, the 5xx's event: nothing for 2xx or 4xx, no spans or sessions", () => {
    expect(exitCode).toBe(0);
    const items = sentry.envelopes().flat();
    expect(items.map((i) => i.type)).toEqual(["event"]);
  });

  it("gives the event the request id, route, method and user", () => {
    const [event] = sentry.events();
    expect(event.exception.values[0].value).toBe("Fault injected by POST /v1/_test/fault");
    expect(event.tags).toMatchObject({
      request_id: "the-one-fault",
      route: "/v1/_test/fault",
      method: "POST",
      status_code: "500",
      user_id: "press-4-historian",
    });
    expect(event.user?.id).toBe("press-4-historian");
    // No tracing configured: no trace id is invented for the tag.
    expect(event.tags.trace_id).toBeUndefined();
  });
});

describe("Sentry and unhandled errors", () => {
  for (const kind of ["rejection", "exception"] as const) {
    it(`reports an unhandled ${kind} exactly once, with the request id, and the process still ends`, async () => {
      const sentry = await startSentryReceiver();
      try {
        const child = spawn(process.execPath, ["--import", "tsx", "test/telemetry/fixtures/crash.ts", kind], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? "", SENTRY_DSN: sentry.dsn, LOG_LEVEL: "silent" },
          stdio: ["ignore", "ignore", "pipe"],
        });
        let stderr = "";
        child.stderr?.on("data", (c: Buffer) => {
          stderr += c.toString();
        });
        const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
        expect(code, stderr).not.toBe(0);
        const events = sentry.events();
        expect(events).toHaveLength(1);
        const message = kind === "rejection" ? "Rejected and never handled" : "Thrown and never caught";
        expect(events[0].exception.values[0].value).toBe(message);
        expect(events[0].exception.values[0].mechanism.handled).toBe(false);
        expect(events[0].tags.request_id).toBe(`crash-${kind}`);
        expect(events[0].user?.id).toBe("operator-7");
      } finally {
        await sentry.close();
      }
    });
  }
});
