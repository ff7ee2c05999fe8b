import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
import { currentContext } from "./context.js";

/** pino's numeric levels mapped to the names of the observability contract (§1). */
const LEVEL_NAMES: Record<number, string> = {
  10: "DEBUG",
  20: "DEBUG",
  30: "INFO",
  40: "WARNING",
  50: "ERROR",
  60: "CRITICAL",
};

export type LogLevelName = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export function loggerOptions(level: LogLevelName): LoggerOptions {
  return {
    level,
    base: null,
    messageKey: "message",
    errorKey: "exception",
    timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
    formatters: {
      level: (_label, number) => ({ level: LEVEL_NAMES[number] ?? "INFO" }),
    },
    // The request context rides in AsyncLocalStorage, so no caller ever passes request ids by hand.
    mixin() {
      const ctx = currentContext();
      if (!ctx) return {};
      const out: Record<string, string> = { request_id: ctx.requestId };
      if (ctx.userId) out.user_id = ctx.userId;
      if (ctx.traceId) out.trace_id = ctx.traceId;
      if (ctx.spanId) out.span_id = ctx.spanId;
      return out;
    },
    serializers: {
      exception: (err: unknown) =>
        err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ""}` : String(err),
    },
  };
}

let root: Logger = pino(loggerOptions("info"));

/** Replaces the process-wide root logger (start-up does this once, after reading the configuration). */
export function setRootLogger(level: LogLevelName, destination?: DestinationStream): Logger {
  root = destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
  return root;
}

export function rootLogger(): Logger {
  return root;
}

/** A component logger (`i3xd.http`, `i3xd.store`, …). Resolved lazily so it follows `setRootLogger`. */
export function getLogger(component: string): Logger {
  let cached: Logger | undefined;
  let cachedRoot: Logger | undefined;
  return new Proxy({} as Logger, {
    get(_target, prop) {
      if (cachedRoot !== root || !cached) {
        cachedRoot = root;
        cached = root.child({ logger: component });
      }
      const value = Reflect.get(cached, prop, cached);
      return typeof value === "function" ? value.bind(cached) : value;
    },
  });
}
