import { AsyncLocalStorage } from "node:async_hooks";

/** What every log line, span and error report written while serving one request needs to know. */
export interface RequestContext {
  requestId: string;
  userId?: string;
  traceId?: string;
  spanId?: string;
}

/**
 * What one asynchronous scope carries: the request it serves, if any, and the active OpenTelemetry context,
 * if any (opaque here, so that nothing but tracing depends on the OpenTelemetry API). Both ride in a single
 * AsyncLocalStorage: every enabled AsyncLocalStorage copies its store into every promise and callback the
 * process creates, so a second one (the OpenTelemetry SDK's own) would cost each request that much again.
 */
interface Scope {
  readonly request: RequestContext | undefined;
  readonly trace: unknown;
}

const scopes = new AsyncLocalStorage<Scope>();

export function currentContext(): RequestContext | undefined {
  return scopes.getStore()?.request;
}

/** Runs `fn` as part of serving `request`, keeping the trace context that is active now. */
export function runInRequest<A extends unknown[], R>(
  request: RequestContext,
  fn: (...args: A) => R,
  ...args: A
): R {
  return scopes.run({ request, trace: scopes.getStore()?.trace }, fn, ...args);
}

/** The active OpenTelemetry context, as set by `runInTraceContext`. */
export function activeTraceContext(): unknown {
  return scopes.getStore()?.trace;
}

/** Runs `fn` with `trace` as the active OpenTelemetry context, inside the request that is current now. */
export function runInTraceContext<A extends unknown[], R>(
  trace: unknown,
  fn: (...args: A) => R,
  ...args: A
): R {
  return scopes.run({ request: scopes.getStore()?.request, trace }, fn, ...args);
}
