import { Writable } from "node:stream";
import { getHeapStatistics } from "node:v8";
import { parentPort } from "node:worker_threads";
import { LogstashSink, type LogstashSinkOptions } from "./logstash.js";
import { LokiSink, type LokiSinkOptions } from "./loki.js";
import type { LineSink } from "./sink.js";

/**
 * pino transport (runs in pino's worker thread): ships log lines to Loki and/or Logstash. The request path
 * only copies each line into the worker's shared buffer; batching, network I/O and retries happen here.
 * Drop counts and buffer sizes travel back to the main thread as `telemetry` events on the transport
 * stream, where they become Prometheus metrics.
 */
export interface ShippingOptions {
  loki?: Omit<LokiSinkOptions, "bufferMax">;
  logstash?: Omit<LogstashSinkOptions, "bufferMax">;
  bufferMax: number;
  /** Longest time spent delivering buffered lines when the logger is flushed or closed, ms. */
  flushTimeoutMs: number;
  /** How often counters are reported to the main thread, ms. */
  reportIntervalMs?: number;
}

/** What the main thread receives (`stream.on("telemetry", …)`). */
export interface ShippingReport {
  /** Lines dropped per sink since the previous report. */
  dropped: Record<string, number>;
  /** Lines buffered per sink right now. */
  buffered: Record<string, number>;
  /** Reachability changes since the previous report. */
  status: { sink: string; up: boolean; detail: string }[];
  /** Bytes used by this worker thread's heap (its own V8 isolate, not in the process's heap metrics). */
  heapUsed: number;
}

export default async function shippingTransport(options: ShippingOptions): Promise<Writable> {
  const statusChanges: ShippingReport["status"] = [];
  const onStatus = (sink: string, up: boolean, detail: string) => {
    statusChanges.push({ sink, up, detail });
  };
  const sinks: LineSink[] = [];
  if (options.loki) sinks.push(new LokiSink({ ...options.loki, bufferMax: options.bufferMax }, onStatus));
  if (options.logstash) {
    sinks.push(new LogstashSink({ ...options.logstash, bufferMax: options.bufferMax }, onStatus));
  }

  let lastBuffered = "";
  let lastHeap = 0;
  const report = () => {
    const out: ShippingReport = {
      dropped: {},
      buffered: {},
      status: statusChanges.splice(0),
      heapUsed: getHeapStatistics().used_heap_size,
    };
    let any = out.status.length > 0;
    for (const sink of sinks) {
      const dropped = sink.takeDropped();
      if (dropped > 0) any = true;
      out.dropped[sink.name] = dropped;
      out.buffered[sink.name] = sink.buffered();
    }
    const buffered = JSON.stringify(out.buffered);
    if (buffered !== lastBuffered) any = true;
    lastBuffered = buffered;
    if (Math.abs(out.heapUsed - lastHeap) > 1024 * 1024) any = true;
    if (any) lastHeap = out.heapUsed;
    // thread-stream re-emits `EVENT` messages on the main thread's stream object.
    if (any) parentPort?.postMessage({ code: "EVENT", name: "telemetry", args: [out] });
  };
  const timer = setInterval(report, options.reportIntervalMs ?? 500);
  timer.unref();

  const flushAll = async () => {
    const deadline = Date.now() + options.flushTimeoutMs;
    await Promise.all(sinks.map((s) => s.flush(deadline)));
    report();
  };

  let carry = "";
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      const text = carry + (typeof chunk === "string" ? chunk : chunk.toString("utf8"));
      let start = 0;
      for (let nl = text.indexOf("\n", start); nl >= 0; nl = text.indexOf("\n", start)) {
        if (nl > start) {
          const line = text.slice(start, nl);
          for (const sink of sinks) sink.push(line);
        }
        start = nl + 1;
      }
      carry = text.slice(start);
      callback();
    },
    final(callback) {
      clearInterval(timer);
      if (carry !== "") {
        for (const sink of sinks) sink.push(carry);
        carry = "";
      }
      const deadline = Date.now() + options.flushTimeoutMs;
      Promise.all(sinks.map((s) => s.close(deadline))).then(
        () => {
          report();
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  // thread-stream calls this when the main thread flushes the logger (e.g. before a planned exit).
  (stream as Writable & { flush?: (cb: (err?: Error) => void) => void }).flush = (cb) => {
    flushAll().then(
      () => cb(),
      (err: Error) => cb(err),
    );
  };
  return stream;
}
