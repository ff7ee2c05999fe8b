import type {
  Namespace,
  ObjectRecord,
  ObjectType,
  Relationship,
  RelationshipType,
  Vqt,
} from "../domain/model.js";
import type { ModelDocument } from "../model/format.js";

/** One VQT point to store. `tsUs` is the parsed `vqt.timestamp` (microseconds since the epoch). */
export interface PointWrite {
  elementId: string;
  tsUs: number;
  vqt: Vqt;
}

/**
 * How a batch of points lands:
 * - `current`: each point replaces the element's current value and is appended to history
 *   (a point with the same timestamp replaces the history record).
 * - `history`: each point creates or replaces the history record at its timestamp; it becomes the current
 *   value only when it is at least as new as the current one.
 */
export type WriteMode = "current" | "history";

export interface HistoryRange {
  startUs: number;
  endUs: number;
  /** Most points returned per element; the store reports `truncated` when more exist in the range. */
  limitPerElement: number;
}

/**
 * One element's history in a range, rendered as the JSON array of its points (`{value, quality,
 * timestamp}`, ascending by time, both range ends inclusive), byte for byte what `JSON.stringify(points)`
 * gives: stored values are JSON text written by `JSON.stringify`, so they are embedded as stored. A large
 * read never materialises one object per point (and parses its value) only to serialize it again.
 */
export interface HistoryJson {
  /**
   * The JSON text, or its UTF-8 bytes: a series read in another thread crosses as bytes (moved, not
   * copied) and goes into the response as it is, never becoming a string on the event loop.
   */
  json: string | Uint8Array;
  /** Points in `json`. */
  count: number;
  truncated: boolean;
}

/**
 * The storage port. Batch-shaped: every read takes many ids and answers with a map, so one query serves a
 * whole bulk request. Ids that do not exist are simply absent from the returned map. Adapters translate;
 * the i3X rules (maxDepth, envelopes, validation) live in the services.
 */
export interface Store {
  readonly kind: "sqlite" | "postgres";
  /** Runs migrations; safe to call on every start. */
  init(): Promise<void>;
  close(): Promise<void>;
  /**
   * Throws (with a message naming the cause) when the backing database cannot answer a trivial query,
   * which turns `GET /health/ready` into a 503. Recovers by itself: a lost handle or connection is
   * reopened here, so readiness returns to 200 without a restart once the database is back. SQLite: also
   * throws when the database file is gone from its path (moved, deleted), and reopens when a different
   * file is found there, since an open handle would keep working on an unlinked file.
   */
  ping(): Promise<void>;
  /** Open connections (SQLite: open handles; PostgreSQL: pool clients). */
  connectionCount(): number;
  /** True when no object types and no objects exist yet. */
  isEmpty(): Promise<boolean>;

  listNamespaces(): Promise<Namespace[]>;
  listObjectTypes(namespaceUri?: string): Promise<ObjectType[]>;
  getObjectTypes(ids: readonly string[]): Promise<Map<string, ObjectType>>;
  listRelationshipTypes(namespaceUri?: string): Promise<RelationshipType[]>;
  getRelationshipTypes(ids: readonly string[]): Promise<Map<string, RelationshipType>>;
  /** All objects, optionally only those of one type and/or only roots (`parentId` null). */
  listObjects(filter?: { typeElementId?: string; root?: boolean }): Promise<ObjectRecord[]>;
  getObjects(ids: readonly string[]): Promise<Map<string, ObjectRecord>>;
  /** Outgoing edges of the given objects (both directions are stored, so this finds every neighbour). */
  getRelationships(sourceIds: readonly string[], relationshipType?: string): Promise<Relationship[]>;

  getCurrentValues(ids: readonly string[]): Promise<Map<string, Vqt>>;
  getHistoryJson(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>>;
  /**
   * Stores a batch atomically: all points or none. Returns the points that became current values, as the
   * write itself decided, in batch order: in `current` mode every point (each replaced the value in turn),
   * in `history` mode the newest point of each element when it was at least as new as the stored value.
   */
  writePoints(points: readonly PointWrite[], mode: WriteMode): Promise<PointWrite[]>;

  /** Loads a validated model document in one transaction (upserting by elementId). */
  importModel(model: ModelDocument): Promise<void>;

  /**
   * Removes objects and everything below them (their components and hierarchical children, followed
   * through `HasComponent` and `HasChildren` to any depth), with every relationship from or to them, their
   * current values and their history, in one transaction. A composition that loses its last component is
   * one no more. Ids that name no object are skipped; object types stay. Returns the ids removed. Like
   * `importModel`, a model change: on PostgreSQL the other replicas are told, and drop their caches.
   */
  removeObjects(elementIds: readonly string[]): Promise<string[]>;
}

/**
 * The backing database cannot be reached (connection refused, lost, or none free in time). Carries HTTP
 * 503 for the error handler: the request was fine, the store was not there to answer it, and a retry
 * (here or on another replica) may succeed.
 */
export class StoreUnavailableError extends Error {
  readonly statusCode = 503;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/** Why a write found no room: the configured bound (`I3XD_STORE_MAX_BYTES`), or the disk itself. */
export type StoreFullReason = "size_bound" | "disk_full";

/**
 * A write that the store could not keep for lack of space (SQLite `SQLITE_FULL`, `ENOSPC`, PostgreSQL
 * `53100 disk_full`). The transaction was rolled back, so nothing stored before is touched; reads keep
 * working, and the same write succeeds once retention or the operator has made room. HTTP 507.
 */
export class StoreFullError extends Error {
  readonly statusCode = 507;
  constructor(
    readonly reason: StoreFullReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StoreFullError";
  }
}

/** True for the driver errors that mean "no space left": SQLite, the file system, PostgreSQL. */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_FULL" || code === "ENOSPC" || code === "53100";
}
