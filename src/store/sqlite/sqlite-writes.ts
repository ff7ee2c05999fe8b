import Database from "better-sqlite3";
import type { PointWrite, WriteMode } from "../store.js";

/**
 * WAL pages after which a commit copies the WAL back into the database file. A batch of points of many
 * series dirties about a page per series, so with SQLite's default (1,000 pages) nearly every large
 * commit also ran a checkpoint; a page written again within the window is copied back once. The WAL file
 * grows to about this many pages (16 MiB at the 4 KiB page size) plus the last transaction's.
 */
const WAL_CHECKPOINT_PAGES = 4000;

/**
 * A connection that may write: WAL with synchronous=NORMAL survives a process kill (the WAL is written
 * before a commit returns; only an OS crash or power loss can lose the last transactions), so a write
 * acknowledged with 200 is on disk for a SIGKILLed server.
 */
export function openWritable(
  file: string,
  options: Database.Options = {},
  /** `I3XD_STORE_MAX_BYTES`: SQLite itself then refuses to grow the file past it (`SQLITE_FULL`). */
  maxBytes?: number,
): Database.Database {
  const db = new Database(file, options);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
  if (maxBytes !== undefined) db.pragma(`max_page_count = ${maxPagesFor(db, maxBytes)}`);
  return db;
}

/** The `max_page_count` that keeps a database file within `maxBytes`. */
export function maxPagesFor(db: Database.Database, maxBytes: number): number {
  return Math.max(1, Math.floor(maxBytes / (db.pragma("page_size", { simple: true }) as number)));
}

/** Points to write, column by column. */
export interface PointBatch {
  mode: WriteMode;
  ids: string[];
  tsUs: number[];
  values: unknown[];
  qualities: string[];
}

export function toBatch(points: readonly PointWrite[], mode: WriteMode): PointBatch {
  const n = points.length;
  const batch: PointBatch = {
    mode,
    ids: new Array(n),
    tsUs: new Array(n),
    values: new Array(n),
    qualities: new Array(n),
  };
  for (let i = 0; i < n; i++) {
    const p = points[i];
    batch.ids[i] = p.elementId;
    batch.tsUs[i] = p.tsUs;
    batch.values[i] = p.vqt.value;
    batch.qualities[i] = p.vqt.quality;
  }
  return batch;
}

export interface WriteStatements {
  putHistory: Database.Statement;
  upsertCurrent: Database.Statement;
  upsertCurrentIfNewer: Database.Statement;
}

export function prepareWriteStatements(db: Database.Database): WriteStatements {
  return {
    putHistory: db.prepare(
      "INSERT OR REPLACE INTO history (element_id, ts_us, value, quality) VALUES (?, ?, ?, ?)",
    ),
    upsertCurrent: db.prepare(
      `INSERT INTO current_values (element_id, ts_us, value, quality) VALUES (?, ?, ?, ?)
        ON CONFLICT(element_id) DO UPDATE SET ts_us = excluded.ts_us, value = excluded.value, quality = excluded.quality`,
    ),
    upsertCurrentIfNewer: db.prepare(
      `INSERT INTO current_values (element_id, ts_us, value, quality) VALUES (?, ?, ?, ?)
        ON CONFLICT(element_id) DO UPDATE SET ts_us = excluded.ts_us, value = excluded.value, quality = excluded.quality
        WHERE excluded.ts_us >= current_values.ts_us
        RETURNING element_id`,
    ),
  };
}

/**
 * Writes a batch; the caller holds the transaction. Returns the positions in the batch of the points that
 * became current values, in order: every point in `current` mode (each replaced the value in turn), in
 * `history` mode the newest point of each element that was at least as new as the stored value, as the
 * upsert's `RETURNING` says.
 */
export function putPoints(stmts: WriteStatements, batch: PointBatch): number[] {
  const { ids, tsUs, values, qualities, mode } = batch;
  // Inside one transaction only the last current-value upsert of each element decides what stays, so
  // one upsert per element does what one per point did: in `current` mode the element's last point, in
  // `history` mode its newest (the later one of equal timestamps, as `>=` in the upsert keeps it).
  const last = new Map<string, { i: number; value: string }>();
  for (let i = 0; i < ids.length; i++) {
    const value = JSON.stringify(values[i] ?? null);
    stmts.putHistory.run(ids[i], tsUs[i], value, qualities[i]);
    const seen = last.get(ids[i]);
    if (seen === undefined || mode === "current" || tsUs[i] >= tsUs[seen.i]) last.set(ids[i], { i, value });
  }
  if (mode === "current") {
    for (const [id, { i, value }] of last) stmts.upsertCurrent.run(id, tsUs[i], value, qualities[i]);
    return ids.map((_, i) => i);
  }
  const became: number[] = [];
  for (const [id, { i, value }] of last) {
    if (stmts.upsertCurrentIfNewer.get(id, tsUs[i], value, qualities[i]) !== undefined) became.push(i);
  }
  return became.sort((a, b) => a - b);
}
