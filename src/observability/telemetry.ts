import type { FastifyInstance } from "fastify";
import { registerErrorReports, startErrorReporting, stopErrorReporting } from "./errors.js";
import { type LogShipping, startLogShipping } from "./log-shipping.js";
import type { LogSink } from "./logger.js";
import type { TelemetryConfig } from "./telemetry-config.js";
import { registerTracing, startTracing, stopTracing } from "./tracing.js";

/**
 * The telemetry that leaves the process: traces (OTLP), error reports (Sentry) and shipped logs (Loki,
 * Logstash). Each part is off unless configured, and none of them can slow down or fail a request: every
 * buffer on the way out is bounded and what does not fit is counted in `telemetry_dropped_total{sink}`.
 */
export interface Telemetry {
  /** Extra log destinations for `configureLogging`. */
  logSinks: LogSink[];
  /** Flushes what it can within the configured deadline, then stops every part. */
  close(): Promise<void>;
}

/** Tracing and Sentry are process-wide; they stop when the last server using them closes. */
let users = 0;

export async function startTelemetry(config: TelemetryConfig): Promise<Telemetry> {
  if (config.tracing) await startTracing(config.tracing);
  if (config.sentry) await startErrorReporting(config.sentry);
  users++;
  const shipping: LogShipping | undefined = startLogShipping(config);
  let closing: Promise<void> | undefined;
  return {
    logSinks: shipping ? [shipping.sink] : [],
    close() {
      closing ??= (async () => {
        users--;
        const deadline = config.flushTimeoutMs;
        await Promise.all([
          shipping?.close(deadline),
          users === 0 ? stopTracing(deadline) : undefined,
          users === 0 ? stopErrorReporting(deadline) : undefined,
        ]);
      })();
      return closing;
    },
  };
}

/**
 * Request tracing and 5xx error reports for an app. Register it before the observability hooks: the
 * request span must already be active when the request context and the first log line are made.
 */
export async function registerTelemetry(app: FastifyInstance): Promise<void> {
  await registerTracing(app);
  await registerErrorReports(app);
}
