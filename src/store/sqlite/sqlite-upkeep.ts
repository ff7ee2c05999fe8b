import fs from "node:fs";
import path from "node:path";
import type Database from "better-sqlite3";
import { getLogger } from "../../observability/logger.js";
import {
  storeHistoryRowsEstimate,
  storeRetentionDeleted,
  storeSizeBytes,
  storeSizeLimitBytes,
} from "../../observability/metrics.js";
import { cutoffUsFor, type RetentionPolicy, retains } from "../retention.js";
import type { StoreFullReason } from "../store.js";
import { maxPagesFor } from "./sqlite-writes.js";

const log = getLogger("i3xd.store");

/**
 * Rows one delete statement removes. Each batch is its own short write transaction on the event loop, so
 * it is the longest a concurrent request waits for the store; the test in test/store/sqlite-upkeep.test.ts
 * reports that pause.
 */
const DELETE_BATCH_ROWS = 1000;
/** Free pages one `incremental_vacuum` step hands back to the file system (1 MiB at 4 KiB pages). */
const VACUUM_BATCH_PAGES = 256;
/** The size bound starts removing history when the pages in use reach this share of it… */
const BOUND_HIGH_WATER = 0.9;
/** …and stops when they are back under this share, so it does not run again at every write. */
const BOUND_LOW_WATER = 0.8;
/** The first slice of oldest history the size bound removes; doubled each round that was not enough. */
const FIRST_PRUNE_SLICE_US = 60_000_000;
/** Rows ANALYZE samples for `store_history_rows_estimate`: enough for an estimate, cheap on any size. */
const ANALYSIS_LIMIT = 400;

export interface SqliteUpkeepOptions {
  file: string;
  retention: RetentionPolicy;
  /** `I3XD_STORE_MAX_BYTES`: also enforced by SQLite itself as `max_page_count` (`maxPagesFor`). */
  maxBytes: number | undefined;
  intervalMs: number;
}

/** What one upkeep cycle did. */
export interface UpkeepResult {
  retentionDeleted: number;
  boundDeleted: number;
  vacuumedPages: number;
}

/**
 * The SQLite store's housekeeping, run every `intervalMs` off the request path: history retention, the size
 * bound, incremental vacuum and the store's metrics. Everything that writes does so in small batches, each
 * its own transaction, with a turn of the event loop between them: requests interleave with the work, and no
 * write lock is held for longer than one batch. Works on whatever connection `db()` returns at the time, as
 * the store may reopen its file.
 */
export class SqliteUpkeep {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<UpkeepResult> | undefined;
  private again = false;
  /** A write was refused since the last cycle: make room even below the high-water mark. */
  private refused = false;
  private stopped = false;

  constructor(
    private readonly db: () => Database.Database,
    private readonly options: SqliteUpkeepOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops the timer and waits for a cycle under way, which ends after its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }

  /** A write found the store full: make room now rather than at the next interval. */
  soon(): void {
    if (this.stopped) return;
    this.refused = true;
    if (this.running !== undefined) this.again = true;
    else this.schedule(0);
  }

  /** One full cycle now (the timer's, or a test's with its own clock); waits for one under way first. */
  async run(nowMs?: number): Promise<UpkeepResult> {
    while (this.running !== undefined) await this.running.catch(() => {});
    const cycle = this.cycle(nowMs ?? Date.now());
    this.running = cycle;
    try {
      return await cycle;
    } finally {
      this.running = undefined;
    }
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.run()
        .catch((err: unknown) => log.warn({ exception: err }, "Store upkeep failed; retrying later"))
        .finally(() => {
          if (this.stopped) return;
          const next = this.again ? 0 : this.options.intervalMs;
          this.again = false;
          this.schedule(next);
        });
    }, delayMs);
    this.timer.unref();
  }

  private async cycle(nowMs: number): Promise<UpkeepResult> {
    const result: UpkeepResult = { retentionDeleted: 0, boundDeleted: 0, vacuumedPages: 0 };
    if (retains(this.options.retention)) {
      result.retentionDeleted = await this.applyRetention(nowMs);
      if (result.retentionDeleted > 0) {
        log.info({ deleted: result.retentionDeleted }, "History retention removed old points");
      }
    }
    if (this.options.maxBytes !== undefined) {
      result.boundDeleted = await this.keepUnderBound(this.options.maxBytes);
    }
    // The row estimate first: ANALYZE rewrites its statistics table and can free a page the vacuum then
    // hands back, so the file's size is measured once both are done.
    this.estimateRows();
    result.vacuumedPages = await this.vacuum();
    this.measure();
    return result;
  }

  /** Deletes each element's history older than its type's retention, element by element, in batches. */
  private async applyRetention(nowMs: number): Promise<number> {
    const { retention } = this.options;
    let deleted = 0;
    let after = "";
    for (;;) {
      if (this.stopped) break;
      const db = this.db();
      const next = db
        .prepare("SELECT element_id FROM history WHERE element_id > ? LIMIT 1")
        .pluck()
        .get(after) as string | undefined;
      if (next === undefined) break;
      after = next;
      const type = db.prepare("SELECT type_element_id FROM objects WHERE element_id = ?").pluck().get(next) as
        | string
        | undefined;
      const cutoffUs = cutoffUsFor(retention, type, nowMs);
      if (cutoffUs !== undefined) deleted += await this.deleteOlder(next, cutoffUs, "retention");
    }
    return deleted;
  }

  /**
   * Deletes one element's points older than `cutoffUs`, a batch per transaction, yielding between them;
   * each batch is counted as it commits.
   */
  private async deleteOlder(
    elementId: string,
    cutoffUs: number,
    reason: "retention" | "size_bound",
  ): Promise<number> {
    let deleted = 0;
    for (;;) {
      if (this.stopped) return deleted;
      const { changes } = this.db()
        .prepare("DELETE FROM history WHERE element_id = ? AND ts_us < ? LIMIT ?")
        .run(elementId, cutoffUs, DELETE_BATCH_ROWS);
      deleted += changes;
      storeRetentionDeleted.inc({ reason }, changes);
      if (changes < DELETE_BATCH_ROWS) return deleted;
      await turn();
    }
  }

  /**
   * Near the bound (or after a write was refused), removes the oldest history across all elements, a growing slice of time per round,
   * until the pages in use are back under the low-water mark. Current values and the model stay.
   */
  private async keepUnderBound(maxBytes: number): Promise<number> {
    const high = maxBytes * BOUND_HIGH_WATER;
    const low = maxBytes * BOUND_LOW_WATER;
    const refused = this.refused;
    this.refused = false;
    if (!refused && this.usedBytes() < high) return 0;
    let deleted = 0;
    let slice = FIRST_PRUNE_SLICE_US;
    while (!this.stopped && this.usedBytes() > low) {
      const oldest = this.oldestPoints();
      if (oldest.size === 0) break;
      const cutoffUs = Math.min(...oldest.values()) + slice;
      for (const [elementId, firstUs] of oldest) {
        if (firstUs < cutoffUs) deleted += await this.deleteOlder(elementId, cutoffUs, "size_bound");
      }
      slice *= 2;
    }
    const used = this.usedBytes();
    log.warn(
      { deleted, usedBytes: used, maxBytes },
      used > low
        ? "Store near its size bound and no history left to remove: writes may be rejected"
        : "Store near its size bound: removed the oldest history",
    );
    return deleted;
  }

  /** Each element's oldest stored point (µs), one index seek per element. */
  private oldestPoints(): Map<string, number> {
    const first = this.db().prepare(
      "SELECT element_id, ts_us FROM history WHERE element_id > ? ORDER BY element_id, ts_us LIMIT 1",
    );
    const out = new Map<string, number>();
    let after = "";
    for (;;) {
      const row = first.get(after) as { element_id: string; ts_us: number } | undefined;
      if (row === undefined) return out;
      out.set(row.element_id, row.ts_us);
      after = row.element_id;
    }
  }

  /** Pages holding data (the file less its free pages), in bytes. */
  private usedBytes(): number {
    const db = this.db();
    const pageSize = db.pragma("page_size", { simple: true }) as number;
    const pages = (db.pragma("page_count", { simple: true }) as number) - freePages(db);
    return pages * pageSize;
  }

  /** Hands free pages back to the file system, a step at a time, so the file shrinks after deletes. */
  private async vacuum(): Promise<number> {
    let pages = 0;
    while (!this.stopped) {
      const db = this.db();
      const free = freePages(db);
      if (free === 0) break;
      db.pragma(`incremental_vacuum(${Math.min(free, VACUUM_BATCH_PAGES)})`);
      pages += free - freePages(db);
      if (freePages(db) >= free) break;
      await turn();
    }
    // The file takes its new length at the next automatic checkpoint: one forced here would copy the
    // whole WAL back in one go on the event loop, the longest pause of the cycle.
    if (pages > 0 && this.options.maxBytes !== undefined) {
      const db = this.db();
      db.pragma(`max_page_count = ${maxPagesFor(db, this.options.maxBytes)}`);
    }
    return pages;
  }

  private measure(): void {
    const { file, maxBytes } = this.options;
    if (file === ":memory:") return;
    let size = 0;
    for (const part of [file, `${file}-wal`]) size += fileSize(part);
    storeSizeBytes.set({ store: "sqlite" }, size);
    const free = diskFreeBytes(file);
    const limit = Math.min(maxBytes ?? Number.POSITIVE_INFINITY, free === undefined ? Infinity : size + free);
    if (Number.isFinite(limit)) storeSizeLimitBytes.set({ store: "sqlite" }, limit);
  }

  private estimateRows(): void {
    try {
      const db = this.db();
      db.pragma(`analysis_limit = ${ANALYSIS_LIMIT}`);
      db.exec("ANALYZE history");
      const stat = db.prepare("SELECT stat FROM sqlite_stat1 WHERE tbl = 'history' LIMIT 1").pluck().get();
      storeHistoryRowsEstimate.set(typeof stat === "string" ? Number.parseInt(stat, 10) || 0 : 0);
    } catch (err) {
      // ANALYZE writes its statistics: on a full store it fails like any write, and the estimate waits.
      log.debug({ exception: err }, "History row estimate not refreshed");
    }
  }

  /**
   * Why a write just failed for space: the disk, when it has less room left than the bound would allow,
   * otherwise the bound.
   */
  fullReason(): StoreFullReason {
    const { file, maxBytes } = this.options;
    if (maxBytes === undefined || file === ":memory:") return "disk_full";
    const free = diskFreeBytes(file);
    return free !== undefined && free < maxBytes - fileSize(file) ? "disk_full" : "size_bound";
  }
}

function freePages(db: Database.Database): number {
  return db.pragma("freelist_count", { simple: true }) as number;
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Bytes an unprivileged process may still write where the database lives. */
function diskFreeBytes(file: string): number | undefined {
  try {
    const s = fs.statfsSync(path.dirname(file));
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** Lets the event loop serve what waits (requests, timers) between two batches. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
