/**
 * A FIFO of log lines with a hard capacity. When full, the oldest line gives way to the new one: during an
 * outage the most recent lines are the ones worth keeping. Every line given up is counted.
 */
export class LineQueue {
  private readonly items: (string | undefined)[];
  private head = 0;
  private count = 0;
  /** Lines given up since the last `takeDropped()`. */
  private dropped = 0;

  constructor(readonly capacity: number) {
    this.items = new Array(capacity);
  }

  get length(): number {
    return this.count;
  }

  push(line: string): void {
    if (this.count === this.capacity) {
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      this.dropped++;
    }
    this.items[(this.head + this.count) % this.capacity] = line;
    this.count++;
  }

  /**
   * Removes and returns the oldest lines: at most `n`, and no more once they add up to `maxChars`
   * (at least one line is returned when any is queued, however long).
   */
  take(n: number, maxChars = Number.POSITIVE_INFINITY): string[] {
    const out: string[] = [];
    let chars = 0;
    while (out.length < n && this.count > 0) {
      const line = this.items[this.head] as string;
      if (out.length > 0 && chars + line.length > maxChars) break;
      chars += line.length;
      out.push(line);
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
    }
    return out;
  }

  /** Counts lines given up for a reason the queue does not see (a rejected batch, a broken connection). */
  addDropped(n: number): void {
    this.dropped += n;
  }

  takeDropped(): number {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }
}

/** Exponential backoff with full jitter, so many instances do not reconnect in step. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs = 250,
    private readonly maxMs = 30_000,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.max(this.initialMs / 2, Math.round(Math.random() * ceiling));
  }

  reset(): void {
    this.attempt = 0;
  }
}
