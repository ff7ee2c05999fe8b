import { Backoff, LineQueue } from "./queue.js";
import { describeError, type LineSink, type SinkStatusListener, sleep } from "./sink.js";

export interface LokiSinkOptions {
  /** Full push URL, `…/loki/api/v1/push`. */
  pushUrl: string;
  username?: string;
  password?: string;
  /** Sent as `X-Scope-OrgID` (multi-tenant Loki, Grafana Enterprise Logs). */
  tenant?: string;
  /** Labels on every stream besides `level`. */
  labels: Record<string, string>;
  bufferMax: number;
  /** Most lines per push request. */
  batchMax?: number;
  /** Most characters of log lines per push request (Loki limits the request size). */
  batchMaxChars?: number;
  /** How long a line may wait for more to fill its batch, ms. */
  batchIntervalMs?: number;
  /** One push request's time limit, ms. */
  requestTimeoutMs?: number;
}

const LEVEL = /"level":"([A-Za-z]+)"/;
const TIMESTAMP = /"timestamp":"([^"]+)"/;

/**
 * Pushes log lines to Loki's HTTP push API (JSON), one stream per level, in batches. At most one request is
 * in flight; a batch that fails for a reason that may pass (connection refused, timeout, 429, 5xx) is
 * retried with backoff while new lines wait in the bounded queue, so a Loki outage costs at most
 * `bufferMax` lines of memory plus the batch being retried.
 */
export class LokiSink implements LineSink {
  readonly name = "loki";
  private readonly queue: LineQueue;
  private readonly batchMax: number;
  private readonly batchMaxChars: number;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly backoff = new Backoff();
  /** The batch being sent or waiting for a retry, with its request body. */
  private pending: { lines: number; body: string } | undefined;
  private sending = false;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private closed = false;
  private up = true;
  private abort: AbortController | undefined;
  /** Last nanosecond timestamp handed out: entries stay unique and in order within a millisecond. */
  private lastMs = 0;
  private seq = 0;

  constructor(
    private readonly options: LokiSinkOptions,
    private readonly onStatus: SinkStatusListener = () => {},
  ) {
    this.queue = new LineQueue(options.bufferMax);
    // The batch in flight comes on top of the queue, so it is never larger than the queue's bound.
    this.batchMax = Math.min(options.batchMax ?? 1000, options.bufferMax);
    this.batchMaxChars = options.batchMaxChars ?? 1024 * 1024;
    this.intervalMs = options.batchIntervalMs ?? 1000;
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.headers = { "content-type": "application/json" };
    if (options.username !== undefined) {
      const token = Buffer.from(`${options.username}:${options.password ?? ""}`).toString("base64");
      this.headers.authorization = `Basic ${token}`;
    }
    if (options.tenant !== undefined) this.headers["x-scope-orgid"] = options.tenant;
  }

  push(line: string): void {
    if (this.closed) {
      this.queue.addDropped(1);
      return;
    }
    this.queue.push(line);
    if (!this.sending && this.pending === undefined) {
      this.schedule(this.queue.length >= this.batchMax ? 0 : this.intervalMs);
    }
  }

  buffered(): number {
    return this.queue.length + (this.pending?.lines ?? 0);
  }

  takeDropped(): number {
    return this.queue.takeDropped();
  }

  async flush(deadline: number): Promise<void> {
    this.clearTimer();
    while (this.buffered() > 0 && Date.now() < deadline) {
      if (this.sending) {
        await sleep(Math.min(20, deadline - Date.now()));
        continue;
      }
      // One failed attempt ends the flush: waiting out a dead back-end would only delay the caller.
      if (!(await this.sendOnce(deadline))) break;
    }
    if (!this.closed && this.buffered() > 0 && !this.sending) this.schedule(this.intervalMs);
  }

  async close(deadline: number): Promise<void> {
    this.clearTimer();
    await this.flush(deadline);
    this.closed = true;
    this.clearTimer();
    this.abort?.abort();
    const left = this.buffered();
    if (left > 0) {
      this.queue.take(this.queue.length);
      this.pending = undefined;
      this.queue.addDropped(left);
    }
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    const due = Date.now() + delayMs;
    if (this.timer !== undefined) {
      if (this.timerDue <= due) return;
      clearTimeout(this.timer);
    }
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delayMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async run(): Promise<void> {
    if (this.sending || this.closed) return;
    const ok = await this.sendOnce(Number.POSITIVE_INFINITY);
    if (this.closed) return;
    if (!ok) this.schedule(this.backoff.next());
    else if (this.queue.length > 0) this.schedule(this.queue.length >= this.batchMax ? 0 : this.intervalMs);
  }

  /** Sends the pending batch (or the next one). False when it should be retried later. */
  private async sendOnce(deadline: number): Promise<boolean> {
    if (this.pending === undefined) {
      const lines = this.queue.take(this.batchMax, this.batchMaxChars);
      if (lines.length === 0) return true;
      this.pending = { lines: lines.length, body: this.encode(lines) };
    }
    const batch = this.pending;
    this.sending = true;
    const abort = new AbortController();
    this.abort = abort;
    const timer = setTimeout(
      () => abort.abort(),
      Math.max(1, Math.min(this.timeoutMs, deadline - Date.now())),
    );
    timer.unref();
    try {
      const res = await fetch(this.options.pushUrl, {
        method: "POST",
        headers: this.headers,
        body: batch.body,
        signal: abort.signal,
      });
      const text = await res.text().catch(() => "");
      if (res.ok) {
        this.pending = undefined;
        this.backoff.reset();
        this.markUp();
        return true;
      }
      if (res.status === 429 || res.status >= 500) {
        this.markDown(`HTTP ${res.status} ${text.slice(0, 200)}`);
        return false;
      }
      // Loki refused the batch itself (bad labels, too old, too large): sending it again cannot help.
      this.pending = undefined;
      this.queue.addDropped(batch.lines);
      this.markDown(`HTTP ${res.status}, ${batch.lines} lines discarded: ${text.slice(0, 200)}`);
      return true;
    } catch (err) {
      this.markDown(abort.signal.aborted ? "request timed out" : describeError(err));
      return false;
    } finally {
      clearTimeout(timer);
      this.sending = false;
      this.abort = undefined;
    }
  }

  /** The push body: one stream per level, entries in the order logged, timestamps from the lines. */
  private encode(lines: string[]): string {
    const streams = new Map<string, [string, string][]>();
    for (const line of lines) {
      const level = LEVEL.exec(line)?.[1] ?? "INFO";
      let values = streams.get(level);
      if (values === undefined) {
        values = [];
        streams.set(level, values);
      }
      values.push([this.nanos(line), line]);
    }
    const out: { stream: Record<string, string>; values: [string, string][] }[] = [];
    for (const [level, values] of streams) out.push({ stream: { ...this.options.labels, level }, values });
    return JSON.stringify({ streams: out });
  }

  private nanos(line: string): string {
    const stamp = TIMESTAMP.exec(line)?.[1];
    let ms = stamp === undefined ? Number.NaN : Date.parse(stamp);
    if (!Number.isFinite(ms)) ms = Date.now();
    if (ms > this.lastMs) {
      this.lastMs = ms;
      this.seq = 0;
    } else {
      this.seq++;
    }
    return `${this.lastMs}${String(this.seq).padStart(6, "0")}`;
  }

  private markUp(): void {
    if (this.up) return;
    this.up = true;
    this.onStatus(this.name, true, "delivering again");
  }

  private markDown(detail: string): void {
    if (!this.up) return;
    this.up = false;
    this.onStatus(this.name, false, detail);
  }
}
