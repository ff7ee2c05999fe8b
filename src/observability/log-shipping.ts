import pino from "pino";
import { workerEntry } from "../worker-entry.js";
import { BatchedStream, getLogger, type LogSink } from "./logger.js";
import { telemetryBuffered, telemetryDropped, telemetryShippingHeap } from "./metrics.js";
import type { ShippingOptions, ShippingReport } from "./sinks/worker.js";
import type { TelemetryConfig } from "./telemetry-config.js";

const log = getLogger("i3xd.telemetry");

/** The labels every shipped stream carries besides `level` (observability contract §6). */
export const SHIPPING_LABELS = { application: "i3xd" } as const;

export interface LogShipping {
  /** Handed to the logger as an extra destination. */
  sink: LogSink;
  /** Delivers what is buffered within `deadlineMs`, counts the rest as dropped, stops the worker. */
  close(deadlineMs: number): Promise<void>;
}

type TransportStream = ReturnType<typeof pino.transport> & NodeJS.EventEmitter;

/**
 * Starts the Loki/Logstash shipping worker when either is configured. Lines reach it through pino's
 * transport machinery (a worker thread), so a slow or dead back-end never costs the request path more than
 * copying the line; the worker reports drops and buffer sizes back, and they land in
 * `telemetry_dropped_total{sink}` / `telemetry_buffered{sink}` here, in the main thread's registry.
 */
export function startLogShipping(config: TelemetryConfig): LogShipping | undefined {
  if (!config.loki && !config.logstash) return undefined;
  const options: ShippingOptions = {
    bufferMax: config.bufferMax,
    flushTimeoutMs: config.flushTimeoutMs,
  };
  if (config.loki) options.loki = { ...config.loki, labels: { ...SHIPPING_LABELS } };
  if (config.logstash) options.logstash = { ...config.logstash };

  const target = workerEntry(import.meta.url, "sinks/worker").href;
  const transport = pino.transport({ target, options }) as TransportStream;

  const sinks = [config.loki && "loki", config.logstash && "logstash"].filter(
    (s): s is string => typeof s === "string",
  );
  for (const sink of sinks) {
    // Series exist from the start, so rate() and alert rules see a zero rather than nothing.
    telemetryDropped.inc({ sink }, 0);
    telemetryBuffered.set({ sink }, 0);
  }
  transport.on("telemetry", (report: ShippingReport) => {
    for (const [sink, n] of Object.entries(report.dropped)) if (n > 0) telemetryDropped.inc({ sink }, n);
    for (const [sink, n] of Object.entries(report.buffered)) telemetryBuffered.set({ sink }, n);
    telemetryShippingHeap.set(report.heapUsed);
    for (const change of report.status) {
      if (change.up) log.info({ sink: change.sink }, `Log shipping to ${change.sink} recovered`);
      else {
        log.warn(
          { sink: change.sink, detail: change.detail },
          `Log shipping to ${change.sink} failing; lines are buffered up to ${config.bufferMax}, then dropped`,
        );
      }
    }
  });
  transport.on("error", (err: Error) => {
    process.stderr.write(`i3xd: log shipping worker failed: ${err.message}\n`);
  });

  let closed = false;
  let closing: Promise<void> | undefined;
  // The logger owns this stream from now on: it writes, flushes and, when logging is reconfigured, ends it.
  // Lines reach the worker in batches, as the primary destination's do: a hand-over per line woke the
  // worker for every line (docs/performance-notes.md, telemetry back-ends).
  const stream: BatchedStream = new BatchedStream({
    write(text: string) {
      if (!closed) transport.write(text);
      return true;
    },
    flush(cb: (err?: Error | null) => void) {
      if (closed) return cb();
      (transport as unknown as { flush(cb: (err?: Error | null) => void): void }).flush(cb);
    },
    flushSync() {
      if (!closed) (transport as unknown as { flushSync(): void }).flushSync();
    },
    end() {
      void close(config.flushTimeoutMs);
    },
  });
  const close = (deadlineMs: number): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      // Lines still waiting for their batch go first.
      stream.flush(() => {});
      closed = true;
      if ((transport as unknown as { closed?: boolean }).closed) return resolve();
      // The worker spends at most flushTimeoutMs delivering; the margin covers its start-up and exit.
      const timer = setTimeout(resolve, deadlineMs + 1000);
      timer.unref();
      transport.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        transport.end();
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
    return closing;
  };

  log.info({ sinks }, "Shipping logs");
  return { sink: { name: "shipping", stream }, close };
}
