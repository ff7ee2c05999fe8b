import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import { currentContext, type RequestContext, runInRequest } from "./context.js";
import { getLogger, writeFlatLine } from "./logger.js";
import { entityRequests, requestDuration } from "./metrics.js";
import { holdsKey, redactUrl } from "./redact.js";
import { requestTraceIds } from "./tracing.js";

const log = getLogger("i3xd.http");

export const REQUEST_ID_HEADER = "X-Request-ID";
/** Incoming ids are reused only when they cannot break a log line or a header (contract §2). */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Label of every request that matched no route, so raw paths never become label values. */
export const UNMATCHED = "unmatched";

export interface ObservabilityOptions {
  /**
   * Resolves the authenticated principal at the start of a request, so `Request started` and every
   * later line carry `user_id`. Code that authenticates later sets `currentContext().userId` instead.
   */
  userIdOf?: (request: FastifyRequest) => string | undefined;
  /** Record the request metrics (default true); `I3XD_METRICS=false` leaves them out entirely. */
  metrics?: boolean;
}

/** What the hooks keep per request: the context every log line reads, plus request-line details. */
interface RequestState extends RequestContext {
  /** Health probes and scrapes log at DEBUG so they do not drown the request log. */
  quiet: boolean;
  /** The URL as logged (query secrets masked), computed once for both request lines. */
  path: string;
  /** Bytes the connection had written before this response, to size the response on the wire. */
  bytesBefore: number;
}

declare module "fastify" {
  interface FastifyRequest {
    observability: RequestState | null;
  }
}

/**
 * Request ids, the request context, request logging and the request metrics, as hooks on the root
 * instance. Call it before any other plugin or route is registered: its onRequest hook must run first so
 * that everything after it (other hooks, body parsing, handlers, store calls, the error handler) runs
 * inside the request context.
 */
export function registerObservability(app: FastifyInstance, opts: ObservabilityOptions = {}): void {
  const userIdOf = opts.userIdOf;
  const metrics = opts.metrics !== false;
  app.decorateRequest("observability", null);

  app.addHook("onRequest", (request, reply, done) => {
    const raw = request.raw;
    const incoming = raw.headers["x-request-id"];
    // An id shaped like an API key is a key sent in the wrong header: it must not be echoed or logged.
    const requestId =
      typeof incoming === "string" && SAFE_REQUEST_ID.test(incoming) && !holdsKey(incoming)
        ? incoming
        : randomUUID();
    request.id = requestId;
    // On the raw response, so the header survives errors, 404s and hijacked (streamed) replies alike.
    reply.raw.setHeader(REQUEST_ID_HEADER, requestId);
    const url = raw.url ?? "/";
    // The server span, when tracing is on, was made by the tracing hook that ran just before this one.
    const ids = requestTraceIds(request);
    const state: RequestState = {
      requestId,
      userId: userIdOf?.(request),
      traceId: ids?.traceId,
      spanId: ids?.spanId,
      quiet: isQuiet(url),
      path: redactUrl(url),
      bytesBefore: raw.socket?.bytesWritten ?? 0,
    };
    request.observability = state;
    // run() rather than enterWith(): the rest of the lifecycle is started from `done`, so everything it
    // schedules (body parsing resumes through an AsyncResource created inside, promises, timers)
    // inherits this context, and nothing leaks into whatever runs next on this connection.
    runInRequest(state, startRequest, request, done);
  });

  app.addHook("onResponse", (request, reply, done) => {
    const state = request.observability;
    if (state !== null) {
      if (metrics) recordMetrics(request, reply);
      // 'finish' fires outside any request's async scope; re-enter it so the line carries the ids.
      if (currentContext() === state) logCompleted(request, reply, state);
      else runInRequest(state, logCompleted, request, reply, state);
    }
    done();
  });
}

function isQuiet(url: string): boolean {
  return url.startsWith("/health/") || url === "/metrics" || url.startsWith("/metrics?");
}

function startRequest(request: FastifyRequest, done: HookHandlerDoneFunction): void {
  const state = request.observability as RequestState;
  if (log.isLevelEnabled(state.quiet ? "debug" : "info")) logStarted(request, state);
  done();
}

function logStarted(request: FastifyRequest, state: RequestState): void {
  const fields = {
    method: request.method,
    path: state.path,
    ip: request.ip,
    user_agent: request.headers["user-agent"],
  };
  writeFlatLine(log, state.quiet ? "debug" : "info", fields, "Request started");
}

function logCompleted(request: FastifyRequest, reply: FastifyReply, state: RequestState): void {
  if (!log.isLevelEnabled(state.quiet ? "debug" : "info")) return;
  const socket = request.raw.socket;
  const fields = {
    method: request.method,
    path: state.path,
    status_code: reply.statusCode,
    duration_ms: Math.round(reply.elapsedTime * 1000) / 1000,
    response_size: socket ? socket.bytesWritten - state.bytesBefore : undefined,
  };
  writeFlatLine(log, state.quiet ? "debug" : "info", fields, "Request completed");
}

const endpointLabels = new Map<string, string>();

/**
 * The `endpoint` label: the route template without the API version prefix (`/objects/value`, as the
 * contract names it); `unmatched` for requests no route matched.
 */
export function endpointLabel(template: string | undefined): string {
  if (template === undefined) return UNMATCHED;
  let label = endpointLabels.get(template);
  if (label === undefined) {
    label = template.startsWith("/v1/") ? template.slice(3) : template === "/v1" ? "/" : template;
    endpointLabels.set(template, label);
  }
  return label;
}

function recordMetrics(request: FastifyRequest, reply: FastifyReply): void {
  const method = request.method;
  const endpoint = request.is404 ? UNMATCHED : endpointLabel(request.routeOptions.url);
  entityRequests.inc({ method, endpoint, status: reply.statusCode });
  // Fastify's own request clock (started before the first hook): nothing is timed twice.
  requestDuration.observe({ method, endpoint }, reply.elapsedTime / 1000);
}
