import { AsyncLocalStorage } from "node:async_hooks";

/** What every log line, span and error report written while serving one request needs to know. */
export interface RequestContext {
  requestId: string;
  userId?: string;
  traceId?: string;
  spanId?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

export function currentContext(): RequestContext | undefined {
  return requestContext.getStore();
}
