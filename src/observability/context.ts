import { AsyncLocalStorage } from "node:async_hooks";

/** What every log line, span and error report written while serving one request needs to know. */
export interface RequestContext {
  requestId: string;
  userId?: string;
  traceId?: string;
  spanId?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

/** Installed by tracing while it is on: the ids of the span active at the call, if any. */
type TraceIdsSource = () => { traceId: string; spanId: string } | undefined;
let traceIdsSource: TraceIdsSource | undefined;

export function setActiveTraceIdsSource(source: TraceIdsSource | undefined): void {
  traceIdsSource = source;
}

export function currentContext(): RequestContext | undefined {
  const ctx = requestContext.getStore();
  // The request span starts before the request context exists, so the first look from inside the span
  // records its ids; every later line of the request reuses them.
  if (ctx !== undefined && ctx.traceId === undefined && traceIdsSource !== undefined) {
    const ids = traceIdsSource();
    if (ids !== undefined) {
      ctx.traceId = ids.traceId;
      ctx.spanId = ids.spanId;
    }
  }
  return ctx;
}
