/** A log back-end fed one JSON line at a time. `push` never blocks and never throws. */
export interface LineSink {
  readonly name: string;
  push(line: string): void;
  /** Lines waiting (queued plus in flight). */
  buffered(): number;
  /** Lines given up since the last call (queue overflow, rejected batch, broken connection, shutdown). */
  takeDropped(): number;
  /** Tries to deliver what is buffered until `deadline` (epoch ms); whatever is left then is dropped. */
  flush(deadline: number): Promise<void>;
  /** Like `flush`, then releases connections and timers for good. */
  close(deadline: number): Promise<void>;
}

/** Changes of a sink's reachability, reported once per change rather than once per failed attempt. */
export type SinkStatusListener = (sink: string, up: boolean, detail: string) => void;

/** Resolves after `ms` (or at once for `ms <= 0`); the timer never keeps a process alive. */
export function sleep(ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = (cause as { code?: unknown } | undefined)?.code ?? (err as { code?: unknown }).code;
    const base = typeof code === "string" ? `${err.message} (${code})` : err.message;
    return cause instanceof Error && cause.message !== err.message ? `${base}: ${cause.message}` : base;
  }
  return String(err);
}
