import type { SourcePoint } from "../connector.js";
import type { QueueLimits } from "./config-file.js";

/** A batch as submitted: its points, and how many source messages and bytes they came from. */
export interface QueuedBatch {
  kind: "points";
  points: readonly SourcePoint[];
  messages: number;
  bytes: number;
}

/** The source was lost at `atUs`: marked in order with the points, so older queued points never undo it. */
export interface QueuedLoss {
  kind: "loss";
  atUs: number;
}

/** Reached once everything queued before it is written or given up: `done` is then called. */
export interface QueuedFlush {
  kind: "flush";
  done: () => void;
}

export type QueueEntry = QueuedBatch | QueuedLoss | QueuedFlush;

/**
 * The queue between one connector and the write path, bounded by points and by bytes. A batch is taken
 * whole or not at all. Above the high-water mark (three quarters of either bound) the connector is asked to
 * pause; `drained()` resolves once the queue is down to a quarter of both bounds.
 */
export class BoundedQueue {
  private entries: QueueEntry[] = [];
  private head = 0;
  points = 0;
  bytes = 0;
  private waiters: (() => void)[] = [];
  private readonly highPoints: number;
  private readonly highBytes: number;
  private readonly lowPoints: number;
  private readonly lowBytes: number;
  private readonly changed: () => void;

  constructor(
    readonly limits: QueueLimits,
    changed: () => void = () => {},
  ) {
    this.highPoints = Math.max(1, Math.floor(limits.maxPoints * 0.75));
    this.highBytes = Math.max(1, Math.floor(limits.maxBytes * 0.75));
    this.lowPoints = Math.floor(limits.maxPoints / 4);
    this.lowBytes = Math.floor(limits.maxBytes / 4);
    this.changed = changed;
  }

  /** Whether the batch fits within both bounds; when it does it is queued. */
  offer(batch: QueuedBatch): boolean {
    const n = batch.points.length;
    if (this.points + n > this.limits.maxPoints || this.bytes + batch.bytes > this.limits.maxBytes)
      return false;
    this.entries.push(batch);
    this.points += n;
    this.bytes += batch.bytes;
    this.changed();
    return true;
  }

  /** Markers take no room: they are tiny, and a loss must never be dropped for lack of space. */
  mark(marker: QueuedLoss | QueuedFlush): void {
    this.entries.push(marker);
    this.changed();
  }

  get aboveHighWater(): boolean {
    return this.points >= this.highPoints || this.bytes >= this.highBytes;
  }

  get length(): number {
    return this.entries.length - this.head;
  }

  /**
   * Takes a marker alone, or consecutive batches up to `maxPoints` together (at least one batch, so a
   * batch larger than `maxPoints` still goes through whole).
   */
  take(maxPoints: number): QueueEntry[] {
    const out: QueueEntry[] = [];
    let points = 0;
    while (this.head < this.entries.length) {
      const next = this.entries[this.head];
      if (next.kind !== "points") {
        if (out.length === 0) {
          out.push(next);
          this.head++;
        }
        break;
      }
      if (out.length > 0 && points + next.points.length > maxPoints) break;
      out.push(next);
      points += next.points.length;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** The taken entries are written (or given up): their room is free again. */
  release(entries: readonly QueueEntry[]): void {
    for (const e of entries) {
      if (e.kind !== "points") continue;
      this.points -= e.points.length;
      this.bytes -= e.bytes;
    }
    this.changed();
    if (this.points <= this.lowPoints && this.bytes <= this.lowBytes) this.wake();
  }

  /**
   * Everything still waiting, removed (a stopped connector's leftovers, counted as dropped); whoever waits
   * for a flush marker among them is let go, as nothing before it is left to write.
   */
  clear(): QueuedBatch[] {
    const waiting = this.entries.slice(this.head);
    for (const e of waiting) if (e.kind === "flush") e.done();
    const left = waiting.filter((e): e is QueuedBatch => e.kind === "points");
    this.entries = [];
    this.head = 0;
    this.release(left);
    return left;
  }

  drained(): Promise<void> {
    if (this.points <= this.lowPoints && this.bytes <= this.lowBytes) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Lets every waiter go (room again, or the connector is stopping). */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
