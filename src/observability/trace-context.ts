import { type Context, ROOT_CONTEXT } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { activeTraceContext, runInTraceContext } from "./context.js";

/**
 * The OpenTelemetry context manager, keeping the active context in the request scope's AsyncLocalStorage
 * instead of an AsyncLocalStorage of its own (see `context.ts` for why one is cheaper than two). Loaded
 * with the SDK, only when tracing is on. The base class contributes `bind` (functions and event emitters);
 * its own AsyncLocalStorage is never entered, so it never costs anything.
 */
export class SharedScopeContextManager extends AsyncLocalStorageContextManager {
  override active(): Context {
    return (activeTraceContext() as Context | undefined) ?? ROOT_CONTEXT;
  }

  override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const cb = thisArg == null ? fn : (fn.bind(thisArg) as F);
    return runInTraceContext(context, cb, ...args);
  }

  override enable(): this {
    return this;
  }

  override disable(): this {
    return this;
  }
}
