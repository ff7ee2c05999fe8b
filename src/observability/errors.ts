import type * as SentrySdk from "@sentry/node";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { currentContext } from "./context.js";
import { getLogger } from "./logger.js";
import { telemetryDropped } from "./metrics.js";
import type { TelemetryConfig } from "./telemetry-config.js";

const log = getLogger("i3xd.telemetry");

const kError = Symbol("i3xd.reportedError");

/** Share of our recorded request spans that go to Sentry as transactions (`SENTRY_TRACES_SAMPLE_RATE`). */
let transactionRate = 0;

/** The SDK, loaded when reporting starts (importing it costs a quarter of a second of start-up). */
let Sentry: typeof SentrySdk | undefined;

export function errorReportingEnabled(): boolean {
  return Sentry !== undefined;
}

/**
 * Starts Sentry error reporting. Unhandled exceptions and rejections are reported by Sentry's process
 * handlers (which then end the process, as Node does without them); 5xx responses by `registerErrorReports`.
 *
 * Only integrations that work when an event is sent are on, so a request that does not fail costs nothing.
 * Sentry's defaults would hook every request: its HTTP server integration clones an isolation scope,
 * continues a trace and records a span of its own per request (a second tracing pipeline; the profile
 * is in docs/performance-notes.md), and console, fetch and child-process capture add breadcrumbs our logs already hold.
 * Sentry keeps out of OpenTelemetry too: no tracer provider (`enableOpenTelemetrySetup: false`), no Fastify
 * instrumentation. Its transactions are made from our own spans (`reportTransaction`).
 */
export async function startErrorReporting(config: NonNullable<TelemetryConfig["sentry"]>): Promise<void> {
  if (Sentry) return;
  const sdk = await import("@sentry/node");
  if (Sentry) return;
  sdk.init({
    dsn: config.dsn,
    environment: config.environment,
    release: config.release,
    tracesSampleRate: config.tracesSampleRate,
    enableOpenTelemetrySetup: false,
    // Load-time module rewriting is only needed for frameworks we do not use.
    enableRuntimeChannelInjection: false,
    defaultIntegrations: false,
    integrations: [
      // Reports unhandled exceptions, then ends the process as Node would.
      sdk.onUncaughtExceptionIntegration(),
      // Ends the process on an unhandled rejection, as Node does without Sentry.
      sdk.onUnhandledRejectionIntegration({ mode: "strict" }),
      // The `cause` chain of an error, as our log lines' `exception` shows it.
      sdk.linkedErrorsIntegration(),
      // Source lines around each stack frame, read when an event is sent.
      sdk.contextLinesIntegration(),
      // Runtime, OS and process context on each event.
      sdk.nodeContextIntegration(),
      // Left out on purpose: Dedupe (it drops an event that looks like the previous one, so the same fault
      // hit by many requests would be reported once and the other requests' ids would be nowhere in
      // Sentry) and Fastify (our own hooks report each 5xx exactly once).
    ],
    transport: (options) =>
      sdk.makeNodeTransport({
        ...options,
        // Sentry's transport queue is bounded (64 envelopes); what it cannot send is counted with the rest.
        recordDroppedEvent: (reason, category, count) => {
          if (category === "error") telemetryDropped.inc({ sink: "sentry" }, count ?? 1);
          options.recordDroppedEvent(reason, category, count);
        },
      }),
  });
  // Errors outside our 5xx hook (unhandled rejections inside a request) still get the request's id.
  sdk.addEventProcessor((event) => {
    const ctx = currentContext();
    if (ctx !== undefined) {
      event.tags = { request_id: ctx.requestId, ...event.tags };
      if (ctx.userId !== undefined && event.user?.id === undefined)
        event.user = { ...event.user, id: ctx.userId };
      if (ctx.traceId !== undefined) event.tags.trace_id ??= ctx.traceId;
    }
    return event;
  });
  Sentry = sdk;
  transactionRate = config.tracesSampleRate;
  log.info({ environment: config.environment, release: config.release }, "Error reports go to Sentry");
}

/** A finished request span of our own tracing, as Sentry's transaction is made from it. */
export interface FinishedRequestSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  /** Seconds since the epoch. */
  start: number;
  end: number;
  failed: boolean;
  requestId?: string;
  data: Record<string, unknown>;
}

/**
 * Sends a request span that our own tracing recorded to Sentry as a transaction, for the share of traces
 * `SENTRY_TRACES_SAMPLE_RATE` asks for. The share is decided by the trace id, so every process of a trace
 * decides alike. Sentry never traces by itself: without our tracing (an OTLP endpoint) it gets no
 * transactions, and it gets no second span per request either way.
 */
export function reportTransaction(span: FinishedRequestSpan): void {
  const sdk = Sentry;
  if (!sdk || !sampledForSentry(span.traceId)) return;
  sdk.captureEvent({
    type: "transaction",
    transaction: span.name,
    start_timestamp: span.start,
    timestamp: span.end,
    contexts: {
      trace: {
        trace_id: span.traceId,
        span_id: span.spanId,
        parent_span_id: span.parentSpanId,
        op: "http.server",
        origin: "manual",
        status: span.failed ? "internal_error" : "ok",
        data: span.data,
      },
    },
    tags: span.requestId === undefined ? undefined : { request_id: span.requestId },
    spans: [],
  });
}

function sampledForSentry(traceId: string): boolean {
  if (transactionRate <= 0) return false;
  if (transactionRate >= 1) return true;
  // The trace id's last 8 hex digits are random (W3C trace context, level 2), uniform over [0, 1).
  return Number.parseInt(traceId.slice(-8), 16) / 0x1_0000_0000 < transactionRate;
}

/** Sends what is queued (bounded by `deadlineMs`) and stops reporting. */
export async function stopErrorReporting(deadlineMs: number): Promise<void> {
  const sdk = Sentry;
  if (!sdk) return;
  Sentry = undefined;
  await sdk.close(deadlineMs).catch(() => false);
}

/**
 * Reports every response with a 5xx status exactly once (health probes excepted), with the error that caused
 * it when there was one, tagged with the request id, route template, method and user. 4xx are the client's
 * business and are never reported.
 */
export async function registerErrorReports(app: FastifyInstance): Promise<void> {
  if (!Sentry) return;
  app.decorateRequest(kError, undefined);

  // onError runs before the error handler turns the error into an envelope: remember what went wrong.
  app.addHook("onError", (request, _reply, error, done) => {
    (request as ReportedRequest)[kError] = error;
    done();
  });

  app.addHook("onSend", (request, reply, payload, done) => {
    // A readiness probe's 503 is the answer it exists to give, not a failure; during a store outage it would
    // otherwise file a report every few seconds per probing kubelet or load balancer.
    if (reply.statusCode >= 500 && !request.url.startsWith("/health/")) {
      report(request, reply.statusCode, reply.getHeader("x-request-id"));
    }
    done(null, payload);
  });
}

type ReportedRequest = FastifyRequest & { [kError]?: unknown };

function report(request: FastifyRequest, status: number, requestIdHeader: unknown): void {
  const sdk = Sentry;
  if (!sdk) return;
  const ctx = currentContext();
  const route = request.routeOptions.url ?? "unmatched";
  const requestId = ctx?.requestId ?? (typeof requestIdHeader === "string" ? requestIdHeader : undefined);
  const error =
    (request as ReportedRequest)[kError] ??
    new Error(`HTTP ${status} from ${request.method} ${route} without an exception`);
  sdk.withScope((scope) => {
    scope.setTags({
      route,
      method: request.method,
      status_code: String(status),
    });
    if (requestId !== undefined) scope.setTag("request_id", requestId);
    if (ctx?.userId !== undefined) {
      scope.setTag("user_id", ctx.userId);
      scope.setUser({ id: ctx.userId });
    }
    if (ctx?.traceId !== undefined) scope.setTag("trace_id", ctx.traceId);
    scope.setTransactionName(`${request.method} ${route}`);
    sdk.captureException(error, { mechanism: { type: "i3xd.http", handled: true } });
  });
}
