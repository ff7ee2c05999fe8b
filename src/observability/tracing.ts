import {
  type Attributes,
  type Context,
  type Counter,
  context,
  createNoopMeter,
  type Meter,
  type MeterProvider,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { getNumberFromEnv } from "@opentelemetry/core";
import type { NodeSDK } from "@opentelemetry/sdk-node";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace";
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from "@opentelemetry/semantic-conventions";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { SERVER_NAME, SERVER_VERSION } from "../version.js";
import { activeTraceContext, currentContext } from "./context.js";
import { errorReportingEnabled, reportTransaction } from "./errors.js";
import { getLogger } from "./logger.js";
import { telemetryDropped } from "./metrics.js";
import { redactKeys, redactText, redactUrl } from "./redact.js";
import type { TelemetryConfig } from "./telemetry-config.js";

const log = getLogger("i3xd.telemetry");

/** Everything i3xd itself creates (store, cache and delivery spans) comes from this tracer. */
const tracer = trace.getTracer(SERVER_NAME, SERVER_VERSION);

let sdk: NodeSDK | undefined;

export function tracingEnabled(): boolean {
  return sdk !== undefined;
}

/** True when the active span belongs to a sampled trace: only then are child spans worth making. */
export function sampledSpanActive(): boolean {
  return sampledContext() !== undefined;
}

/** The active context when its span belongs to a sampled trace. */
function sampledContext(): Context | undefined {
  // Only sampled spans ever become the active context (registerTracing, inChildSpan), so a scope without
  // a trace context, the common case, answers without a trip through the OpenTelemetry API.
  if (sdk === undefined) return undefined;
  const active = activeTraceContext() as Context | undefined;
  return active !== undefined && isSampled(trace.getSpan(active)) ? active : undefined;
}

/**
 * The trace's sampled flag, not `isRecording()`: a span that has ended no longer records, yet work it
 * caused (an SSE delivery after the write's response) still belongs in its trace.
 */
function isSampled(span: Span | undefined): boolean {
  return span !== undefined && (span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
}

/**
 * Starts the OpenTelemetry SDK for traces only (metrics stay with Prometheus, logs with pino). Process-wide and
 * idempotent: a second server in the same process shares the first one's pipeline. The SDK reads the standard
 * variables itself: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (resource), OTEL_TRACES_SAMPLER(_ARG),
 * OTEL_PROPAGATORS, OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS/TIMEOUT/COMPRESSION; OTEL_BSP_* are read here.
 */
export async function startTracing(config: NonNullable<TelemetryConfig["tracing"]>): Promise<void> {
  if (sdk) return;
  // Loaded only when tracing is on: the SDK alone adds about half a second to start-up.
  const [
    { NodeSDK },
    { BatchSpanProcessor },
    { defaultResource, resourceFromAttributes },
    { SharedScopeContextManager },
  ] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/resources"),
    import("./trace-context.js"),
  ]);
  if (sdk) return;
  const exporter =
    config.protocol === "http/json"
      ? new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter()
      : new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
  // The span queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE, default 2048); the processor reports what it drops,
  // and what an export loses, through its self-observability meter, which feeds telemetry_dropped_total.
  // A processor made here reads no OTEL_BSP_* itself (only the SDK's own, made from OTEL_TRACES_EXPORTER,
  // does), so they are passed on; an unset one keeps the processor's default.
  const processor = new BatchSpanProcessor({
    exporter,
    selfObsMeterProvider: droppedSpansMeterProvider(),
    maxQueueSize: getNumberFromEnv("OTEL_BSP_MAX_QUEUE_SIZE"),
    scheduledDelayMillis: getNumberFromEnv("OTEL_BSP_SCHEDULE_DELAY"),
    exportTimeoutMillis: getNumberFromEnv("OTEL_BSP_EXPORT_TIMEOUT"),
    maxExportBatchSize: getNumberFromEnv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
  });
  const started = new NodeSDK({
    // Lowest precedence: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override these (env detector).
    resource: defaultResource().merge(
      resourceFromAttributes({ [ATTR_SERVICE_NAME]: SERVER_NAME, [ATTR_SERVICE_VERSION]: SERVER_VERSION }),
    ),
    spanProcessors: [processor, sentryTransactions],
    contextManager: new SharedScopeContextManager(),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  started.start();
  sdk = started;
  log.info({ protocol: config.protocol }, "Tracing on: exporting spans over OTLP");
}

/**
 * Recorded server spans also become Sentry transactions when Sentry is on (`reportTransaction` decides
 * which): Sentry's view of request performance comes from this pipeline, never from a second one. The SDK
 * calls a processor's `onEnd` for recorded spans only, so an unsampled request costs nothing here.
 */
const sentryTransactions: SpanProcessor = {
  onStart() {},
  onEnd(span: ReadableSpan) {
    if (span.kind !== SpanKind.SERVER || !errorReportingEnabled()) return;
    const sc = span.spanContext();
    const requestId = span.attributes["request.id"];
    reportTransaction({
      name: span.name,
      traceId: sc.traceId,
      spanId: sc.spanId,
      parentSpanId: span.parentSpanContext?.spanId,
      start: span.startTime[0] + span.startTime[1] / 1e9,
      end: span.endTime[0] + span.endTime[1] / 1e9,
      failed: span.status.code === SpanStatusCode.ERROR,
      requestId: typeof requestId === "string" ? requestId : undefined,
      data: { ...span.attributes },
    });
  },
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

/** Flushes queued spans (bounded by `deadlineMs`) and stops the SDK. */
export async function stopTracing(deadlineMs: number): Promise<void> {
  const running = sdk;
  if (!running) return;
  sdk = undefined;
  await withDeadline(running.shutdown(), deadlineMs).catch(() => {});
}

/** What the request hooks keep per traced request. */
interface RequestTrace {
  span: Span;
  /** The error a handler or hook failed with; it goes on the span only if the response is a 5xx. */
  error?: Error;
}

declare module "fastify" {
  interface FastifyRequest {
    [kTrace]: RequestTrace | null;
  }
}

const kTrace = Symbol("i3xd.trace");

/**
 * The trace ids of a request's server span, for the request context (every log line carries them, sampled
 * or not: the ids still name the trace a caller or a proxy continues).
 */
export function requestTraceIds(request: FastifyRequest): { traceId: string; spanId: string } | undefined {
  const span = request[kTrace]?.span;
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  return { traceId: sc.traceId, spanId: sc.spanId };
}

/**
 * One server span per request, named `METHOD /route/template`, continuing a W3C `traceparent` from the
 * request, plus the response's `traceparent`. Register it before any other hook so that the span exists
 * when the request context is made. Only a sampled span becomes the active context: child spans and
 * delivery spans are made only under a sampled trace anyway, and entering a context for every request
 * costs each of them a context switch in every hook and callback that nobody would ever see.
 */
export async function registerTracing(app: FastifyInstance): Promise<void> {
  if (!sdk) return;
  app.decorateRequest(kTrace, null);

  app.addHook("onRequest", (request, reply, done) => {
    const route = request.routeOptions.url;
    if (route !== undefined && isProbe(route)) return done();
    const parent = propagation.extract(ROOT_CONTEXT, request.headers);
    const span = tracer.startSpan(
      route ? `${request.method} ${route}` : request.method,
      { kind: SpanKind.SERVER },
      parent,
    );
    request[kTrace] = { span };
    const traceparent = formatTraceparent(span);
    // On the raw response, like X-Request-ID: a client (or a proxy's access log) can look the trace up
    // from any response, errors and streams included.
    reply.raw.setHeader("traceparent", traceparent);
    reply.raw.setHeader("server-timing", `traceparent;desc="${traceparent}"`);
    if (!span.isRecording()) return done();
    annotateServerSpan(span, request, route);
    context.with(trace.setSpan(parent, span), done);
  });

  // Before the error handler turns the error into an envelope: keep what went wrong.
  app.addHook("onError", (request, _reply, error, done) => {
    const t = request[kTrace];
    if (t) t.error = error;
    done();
  });

  // A request whose client goes away before its response is finished gets no onResponse, so its span is
  // never ended or exported (like its `Request completed` line and its metrics). An `onRequestAbort` hook
  // would catch it, but costs every request a 'close' listener, a measurable share of a cached read's CPU
  // (docs/performance-notes.md).
  app.addHook("onResponse", (request, reply, done) => {
    endServerSpan(request, reply.statusCode);
    done();
  });
}

function endServerSpan(request: FastifyRequest, status: number): void {
  const t = request[kTrace];
  if (!t) return;
  request[kTrace] = null;
  const span = t.span;
  // Attributes of an unsampled span would be discarded: skip building them.
  if (span.isRecording()) {
    if (request.id) span.setAttribute("request.id", request.id);
    const userId = request.observability?.userId;
    if (userId) span.setAttribute("enduser.id", userId);
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    // Semantic conventions: a 4xx is the client's error, not the server span's.
    if (status >= 500) {
      span.setAttribute(ATTR_ERROR_TYPE, String(status));
      if (t.error) recordError(span, t.error);
      else span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}

/**
 * Runs `fn` inside a child span of the active span. Without an active span (work outside a request, e.g. the
 * simulator's ticks) no span is made: a root trace per background tick would bury the request traces.
 */
export function inChildSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span | undefined) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
): Promise<T> {
  // Without an active span, or under an unsampled one (most requests under a ratio sampler, whose
  // children would not be recorded either), no span and no context are made that nobody would see.
  if (!sampledSpanActive()) return fn(undefined);
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Records a child span of the active sampled span for work done synchronously since `startTime` (a
 * `performance.now()` reading); nothing without one.
 */
export function recordChildSpan(
  name: string,
  attributes: Attributes,
  startTime: number,
  kind: SpanKind = SpanKind.INTERNAL,
): void {
  const parent = sampledContext();
  if (parent === undefined) return;
  tracer.startSpan(name, { kind, attributes, startTime }, parent).end(performance.now());
}

/**
 * One span per SSE delivery batch. It is a child of whatever caused the delivery (usually the write request
 * that changed the values), so a trace shows a write fanning out to its subscribers.
 */
export function traceDelivery<T>(subscriptionId: string, updates: number, deliver: () => T): T {
  if (!sdk) return deliver();
  // Caused by an unsampled request (whose span is never the active one, see registerTracing): its children
  // are not recorded, so none is made. Outside any request (the simulator) a delivery starts its own trace.
  const cause = trace.getSpan(context.active());
  if (cause === undefined ? currentContext() !== undefined : !isSampled(cause)) return deliver();
  const span = tracer.startSpan(
    "subscription.deliver",
    {
      kind: SpanKind.PRODUCER,
      attributes: { "subscription.id": subscriptionId, "subscription.updates": updates },
    },
    context.active(),
  );
  try {
    const written = deliver();
    if (written === false) span.setAttribute("subscription.backpressure", true);
    return written;
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/**
 * One span per batch a connector hands to the write path. A batch has no request to belong to, so it is the
 * root of its own trace (sampled as the configured sampler decides); the write's store spans are its
 * children, which links the source's batch to what the write did.
 */
export function traceConnectorBatch<T>(
  connector: string,
  attributes: Attributes,
  write: () => Promise<T>,
): Promise<T> {
  if (!sdk) return write();
  return tracer.startActiveSpan(
    "connector.batch",
    { kind: SpanKind.CONSUMER, attributes: { "connector.name": connector, ...attributes }, root: true },
    ROOT_CONTEXT,
    async (span) => {
      try {
        return await write();
      } catch (err) {
        recordError(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

export function recordError(span: Span, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException({
    name: error.name,
    message: redactText(error.message),
    stack: error.stack === undefined ? undefined : redactText(error.stack),
  });
  span.setStatus({ code: SpanStatusCode.ERROR, message: redactText(error.message) });
}

/** HTTP semantic-convention attributes of the server span. */
function annotateServerSpan(span: Span, request: FastifyRequest, route: string | undefined): void {
  // Query secrets and key-shaped values are masked, as in log lines.
  const url = redactUrl(request.url);
  const q = url.indexOf("?");
  const attributes: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: request.method,
    [ATTR_URL_PATH]: q < 0 ? url : url.slice(0, q),
    [ATTR_URL_SCHEME]: request.protocol,
    [ATTR_SERVER_ADDRESS]: request.hostname,
    [ATTR_CLIENT_ADDRESS]: request.ip,
    [ATTR_NETWORK_PROTOCOL_VERSION]: request.raw.httpVersion,
  };
  if (route !== undefined) attributes[ATTR_HTTP_ROUTE] = route;
  if (q >= 0) attributes[ATTR_URL_QUERY] = url.slice(q + 1);
  if (request.port) attributes[ATTR_SERVER_PORT] = request.port;
  const agent = request.headers["user-agent"];
  if (agent) attributes[ATTR_USER_AGENT_ORIGINAL] = redactKeys(agent);
  span.setAttributes(attributes);
}

function formatTraceparent(span: Span): string {
  const sc = span.spanContext();
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1) === 1 ? "01" : "00"}`;
}

function isProbe(url: string): boolean {
  return url.startsWith("/metrics") || url.startsWith("/health");
}

const SPANS_PROCESSED = "otel.sdk.processor.span.processed";

/**
 * The batch span processor counts every span it finishes in `otel.sdk.processor.span.processed`, with an
 * `error.type` attribute when the span was dropped (queue full) or lost in a failed export. Only that counter
 * is wanted; every other instrument stays the no-op one.
 */
function droppedSpansMeterProvider(): MeterProvider {
  const noop = createNoopMeter();
  const processed: Counter = {
    add(value, attributes) {
      if (attributes?.["error.type"] !== undefined) telemetryDropped.inc({ sink: "otlp" }, value);
    },
  };
  const meter: Meter = Object.create(noop, {
    createCounter: {
      value: (name: string, options?: Parameters<Meter["createCounter"]>[1]) =>
        name === SPANS_PROCESSED ? processed : noop.createCounter(name, options),
    },
  });
  return { getMeter: () => meter };
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
