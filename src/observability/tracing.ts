import type { FastifyOtelInstrumentation } from "@fastify/otel";
import {
  type Attributes,
  type Counter,
  context,
  createNoopMeter,
  type Meter,
  type MeterProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import type { NodeSDK } from "@opentelemetry/sdk-node";
import type { BufferConfig } from "@opentelemetry/sdk-trace-base";
import {
  ATTR_CLIENT_ADDRESS,
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
import { currentContext, setActiveTraceIdsSource } from "./context.js";
import { getLogger } from "./logger.js";
import { telemetryDropped } from "./metrics.js";
import type { TelemetryConfig } from "./telemetry-config.js";

const log = getLogger("i3xd.telemetry");

/** Everything i3xd itself creates (store, cache and delivery spans) comes from this tracer. */
const tracer = trace.getTracer(SERVER_NAME, SERVER_VERSION);

let sdk: NodeSDK | undefined;
let fastifyOtel: FastifyOtelInstrumentation | undefined;

export function tracingEnabled(): boolean {
  return sdk !== undefined;
}

/** True when the active span belongs to a sampled trace: only then are child spans worth making. */
export function sampledSpanActive(): boolean {
  return sdk !== undefined && isSampled(trace.getSpan(context.active()));
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
 * OTEL_PROPAGATORS, OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS/TIMEOUT/COMPRESSION, OTEL_BSP_*.
 */
export async function startTracing(config: NonNullable<TelemetryConfig["tracing"]>): Promise<void> {
  if (sdk) return;
  // Loaded only when tracing is on: the SDK alone adds about half a second to start-up.
  const [
    { NodeSDK },
    { BatchSpanProcessor },
    { defaultResource, resourceFromAttributes },
    { FastifyOtelInstrumentation },
  ] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/resources"),
    import("@fastify/otel"),
  ]);
  if (sdk) return;
  const exporter =
    config.protocol === "http/json"
      ? new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter()
      : new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
  // The span queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE, default 2048); the processor reports what it drops,
  // and what an export loses, through its self-observability meter, which feeds telemetry_dropped_total.
  const bufferConfig: BufferConfig & { selfObsMeterProvider: MeterProvider } = {
    selfObsMeterProvider: droppedSpansMeterProvider(),
  };
  const processor = new BatchSpanProcessor(exporter, bufferConfig);
  const started = new NodeSDK({
    // Lowest precedence: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override these (env detector).
    resource: defaultResource().merge(
      resourceFromAttributes({ [ATTR_SERVICE_NAME]: SERVER_NAME, [ATTR_SERVICE_VERSION]: SERVER_VERSION }),
    ),
    spanProcessors: [processor],
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  started.start();
  sdk = started;
  fastifyOtel = new FastifyOtelInstrumentation({
    // One server span per request. A span per lifecycle hook costs more than it tells, and so does the
    // handler span: it spans the same time as the server span, and every request paid for it (a context
    // switch and a span, sampled or not); store and cache spans are children of the server span instead.
    instrumentHooks: false,
    instrumentHandler: false,
    ignorePaths: (route) => isProbe(route.url),
    requestHook: annotateServerSpan,
  });
  setActiveTraceIdsSource(activeTraceIds);
  log.info({ protocol: config.protocol }, "Tracing on: exporting spans over OTLP");
}

/** Flushes queued spans (bounded by `deadlineMs`) and stops the SDK. */
export async function stopTracing(deadlineMs: number): Promise<void> {
  const running = sdk;
  if (!running) return;
  sdk = undefined;
  setActiveTraceIdsSource(undefined);
  fastifyOtel?.disable();
  fastifyOtel = undefined;
  await withDeadline(running.shutdown(), deadlineMs).catch(() => {});
}

/**
 * Adds request tracing to an app: the `@fastify/otel` plugin (server span named `METHOD /route/template`,
 * W3C trace context extracted from the request) and our own hooks (response `traceparent`, `request.id`).
 * Must be registered before any other hook so that the span is active in all of them.
 */
export async function registerTracing(app: FastifyInstance): Promise<void> {
  if (!fastifyOtel) return;
  await app.register(fastifyOtel.plugin());

  app.addHook("onRequest", (request, reply, done) => {
    const span = serverSpan(request);
    if (span) {
      const traceparent = formatTraceparent(span);
      // A client (or a proxy's access log) can look the trace up from the response alone.
      reply.header("traceparent", traceparent);
      reply.header("server-timing", `traceparent;desc="${traceparent}"`);
    }
    done();
  });

  app.addHook("onSend", (request, reply, payload, done) => {
    const span = serverSpan(request);
    if (span) {
      const ctx = currentContext();
      // Attributes of an unsampled span would be discarded: skip building them.
      if (span.isRecording()) {
        const requestId = ctx?.requestId || headerValue(reply.getHeader("x-request-id"));
        if (requestId) span.setAttribute("request.id", requestId);
        if (ctx?.userId) span.setAttribute("enduser.id", ctx.userId);
      }
      if (ctx && ctx.traceId === undefined) {
        const sc = span.spanContext();
        ctx.traceId = sc.traceId;
        ctx.spanId = sc.spanId;
      }
    }
    done(null, payload);
  });
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
 * One span per SSE delivery batch. It is a child of whatever caused the delivery (usually the write request
 * that changed the values), so a trace shows a write fanning out to its subscribers.
 */
export function traceDelivery<T>(subscriptionId: string, updates: number, deliver: () => T): T {
  if (!sdk) return deliver();
  // Caused by an unsampled request: its children are not recorded, so none is made.
  const cause = trace.getSpan(context.active());
  if (cause !== undefined && !isSampled(cause)) return deliver();
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

export function recordError(span: Span, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

function serverSpan(request: FastifyRequest): Span | undefined {
  return request.opentelemetry().span ?? undefined;
}

/** HTTP semantic-convention attributes @fastify/otel leaves out, and the route-template span name. */
function annotateServerSpan(span: Span, request: FastifyRequest): void {
  if (!span.isRecording()) return;
  const route = request.routeOptions.url;
  span.updateName(route ? `${request.method} ${route}` : request.method);
  const url = request.url;
  const q = url.indexOf("?");
  const attributes: Attributes = {
    [ATTR_URL_PATH]: q < 0 ? url : url.slice(0, q),
    [ATTR_URL_SCHEME]: request.protocol,
    [ATTR_SERVER_ADDRESS]: request.hostname,
    [ATTR_CLIENT_ADDRESS]: request.ip,
    [ATTR_NETWORK_PROTOCOL_VERSION]: request.raw.httpVersion,
  };
  if (q >= 0) attributes[ATTR_URL_QUERY] = url.slice(q + 1);
  if (request.port) attributes[ATTR_SERVER_PORT] = request.port;
  const agent = request.headers["user-agent"];
  if (agent) attributes[ATTR_USER_AGENT_ORIGINAL] = agent;
  span.setAttributes(attributes);
}

function activeTraceIds(): { traceId: string; spanId: string } | undefined {
  const span = trace.getSpan(context.active());
  if (!span) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

function formatTraceparent(span: Span): string {
  const sc = span.spanContext();
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1) === 1 ? "01" : "00"}`;
}

function isProbe(url: string): boolean {
  return url.startsWith("/metrics") || url.startsWith("/health");
}

function headerValue(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
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
