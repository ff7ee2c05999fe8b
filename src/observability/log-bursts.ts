import type { Logger } from "pino";

type Level = "info" | "warn" | "error";

interface Burst {
  suppressed: number;
  timer: NodeJS.Timeout;
}

/** Distinct burst keys remembered at once; beyond it, new kinds are suppressed until a window ends. */
const MAX_KEYS = 256;

/**
 * Log lines that may come in floods (every request failing during a store outage, a parser rejecting a
 * scan): the first of a burst is written in full, the rest of it are counted and summarized once per
 * window, so a flood costs one line per kind and window instead of one per event.
 */
export class LogBursts {
  private readonly bursts = new Map<string, Burst>();

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 10_000,
  ) {}

  /**
   * Writes `message` with `fields` when no burst of `key` is running; otherwise counts it. At the end of
   * a window with suppressed events, one line with `summary` and the count follows.
   */
  write(
    key: string,
    level: Level,
    fields: Record<string, unknown>,
    message: string,
    summary: Record<string, unknown> = {},
  ): void {
    const burst = this.bursts.get(key);
    if (burst !== undefined) {
      burst.suppressed++;
      return;
    }
    if (this.bursts.size >= MAX_KEYS) return;
    this.log[level](fields, message);
    this.start(key, level, message, summary);
  }

  private start(key: string, level: Level, message: string, summary: Record<string, unknown>): void {
    const burst: Burst = {
      suppressed: 0,
      timer: setTimeout(() => {
        this.bursts.delete(key);
        if (burst.suppressed === 0) return;
        this.log[level](
          { ...summary, suppressed: burst.suppressed, window_ms: this.windowMs },
          `${message} (${burst.suppressed} more like it in the last ${this.windowMs / 1000} s)`,
        );
        // Still flooding: the next window summarizes again instead of writing a full line.
        this.start(key, level, message, summary);
      }, this.windowMs),
    };
    burst.timer.unref();
    this.bursts.set(key, burst);
  }
}
