import { type Access, forbiddenItem } from "../domain/access.js";
import type { ChangeFeed, ValueChange } from "../domain/changes.js";
import { type BulkItem, I3xError, itemError, itemOk } from "../domain/errors.js";
import { type ObjectRecord, QUALITIES, type Quality, type Vqt } from "../domain/model.js";
import { formatTimestampUs, nowUs, parseTimestampUs } from "../domain/time.js";
import { SchemaRegistry } from "../model/schemas.js";
import { getLogger } from "../observability/logger.js";
import { dataPointsWritten, storeWriteRejected } from "../observability/metrics.js";
import { type PointWrite, type Store, StoreFullError, type WriteMode } from "../store/store.js";
import { elementNotFound, permitted, unique } from "./model.js";

/** One requested write, as the PUT bodies carry it. `quality` and `timestamp` are checked, not trusted. */
export interface WriteUpdate {
  elementId: string;
  value: { value?: unknown; quality?: unknown; timestamp?: unknown };
}

export type WriteResult = BulkItem<null>;

const log = getLogger("i3xd.store");

/** Since when, and why, the store has been refusing writes for lack of space. */
export interface StoreFull {
  since: string;
  reason: StoreFullError["reason"];
  detail: string;
}

const NULL_QUALITIES: ReadonlySet<Quality> = new Set(["Bad", "GoodNoData"]);
const QUALITY_LIST = QUALITIES.join(", ");

/**
 * The one write path. PUT /objects/value, PUT /objects/history, the demo simulator and any later ingestion
 * all call `write`, which checks every item (element exists, VQT rules, type schema), stores the good ones
 * in one atomic store call, tells the change feed about new current values and counts the points.
 * Bad items fail alone: they never stop the good ones and never touch stored data.
 */
export class WriteService {
  readonly schemas: SchemaRegistry;
  /**
   * Set by a write refused for lack of space, cleared by the next one stored: what `GET /health/ready`
   * reports. Writes keep being tried, so they resume by themselves once retention or the operator made room.
   */
  storeFull: StoreFull | undefined;

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeFeed,
    schemas?: SchemaRegistry,
  ) {
    this.schemas = schemas ?? new SchemaRegistry();
  }

  /** PUT /objects/value: quality defaults to Good and timestamp to the server's clock. */
  writeCurrent(access: Access, updates: readonly WriteUpdate[]): Promise<WriteResult[]> {
    return this.write(access, updates, "current");
  }

  /** PUT /objects/history: quality and timestamp are required; the timestamp picks the record to replace. */
  writeHistory(access: Access, updates: readonly WriteUpdate[]): Promise<WriteResult[]> {
    return this.write(access, updates, "history");
  }

  /** Current values of the given elements: where a writer that carries state (the simulator) resumes from. */
  currentValues(elementIds: readonly string[]): Promise<Map<string, Vqt>> {
    return this.store.getCurrentValues(elementIds);
  }

  /** Results come back in request order, one per update; an element the access denies is a 403 item. */
  async write(access: Access, updates: readonly WriteUpdate[], mode: WriteMode): Promise<WriteResult[]> {
    if (updates.length === 0) return [];
    const objects = await this.store.getObjects(
      permitted(
        access,
        updates.map((u) => u.elementId),
      ),
    );
    const types = await this.store.getObjectTypes(unique([...objects.values()].map((o) => o.typeElementId)));
    this.schemas.register(types.values());

    const receivedUs = nowUs();
    const results: WriteResult[] = new Array(updates.length);
    const points: PointWrite[] = [];
    const perType = new Map<string, number>();
    for (let i = 0; i < updates.length; i++) {
      const update = updates[i];
      if (!access.allows(update.elementId)) {
        results[i] = forbiddenItem(update.elementId);
        continue;
      }
      const object = objects.get(update.elementId);
      if (!object) {
        results[i] = itemError(update.elementId, 404, elementNotFound(update.elementId));
        continue;
      }
      let checked: PointWrite | string;
      try {
        checked = this.check(object, update, mode, receivedUs);
      } catch (err) {
        // A type schema that does not compile is the stored model's fault: that item fails, the rest go on.
        if (!(err instanceof I3xError)) throw err;
        results[i] = itemError(update.elementId, err.status, err.message);
        continue;
      }
      if (typeof checked === "string") {
        results[i] = itemError(update.elementId, 400, checked);
        continue;
      }
      points.push(checked);
      perType.set(object.typeElementId, (perType.get(object.typeElementId) ?? 0) + 1);
      results[i] = itemOk(update.elementId, null);
    }
    if (points.length === 0) return results;

    let becameCurrent: PointWrite[];
    try {
      becameCurrent = await this.store.writePoints(points, mode);
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err;
      this.rejectForSpace(err, results, points.length);
      return results;
    }
    if (this.storeFull !== undefined) {
      log.info({ since: this.storeFull.since }, "Store accepts writes again");
      this.storeFull = undefined;
    }
    for (const [entity_type, n] of perType) dataPointsWritten.inc({ entity_type }, n);
    this.changes.publish(becameCurrent.map(toChange));
    return results;
  }

  /**
   * The batch was rolled back whole: every item that would have been stored gets a 507 of its own, so a
   * bulk write says per item what happened (items already refused keep their own error).
   */
  private rejectForSpace(err: StoreFullError, results: WriteResult[], points: number): void {
    storeWriteRejected.inc({ reason: err.reason }, points);
    const detail = `Not stored: ${err.message}; retry later`;
    for (let i = 0; i < results.length; i++) {
      const r = results[i];
      if (r.success) results[i] = itemError(r.id, 507, detail);
    }
    if (this.storeFull === undefined) {
      log.warn({ reason: err.reason, exception: err.cause }, "Store full: writes are rejected with 507");
      this.storeFull = { since: new Date().toISOString(), reason: err.reason, detail: err.message };
    }
  }

  /** Returns the point to store, or the reason the item is rejected. */
  private check(
    object: ObjectRecord,
    update: WriteUpdate,
    mode: WriteMode,
    receivedUs: number,
  ): PointWrite | string {
    const vqt = update.value;
    if (vqt === null || typeof vqt !== "object" || vqt.value === undefined) {
      return "value must be a VQT object with a value field";
    }
    const history = mode === "history";

    let quality: Quality;
    if (vqt.quality === undefined || vqt.quality === null) {
      if (history) return "value.quality is required for history writes";
      quality = "Good";
    } else if (QUALITIES.includes(vqt.quality as Quality)) {
      quality = vqt.quality as Quality;
    } else {
      return `value.quality must be one of ${QUALITY_LIST}, got ${JSON.stringify(vqt.quality)}`;
    }

    let tsUs: number;
    if (vqt.timestamp === undefined || vqt.timestamp === null) {
      if (history) return "value.timestamp is required for history writes";
      tsUs = receivedUs;
    } else {
      const parsed = parseTimestampUs(vqt.timestamp);
      if (parsed === null) {
        return `value.timestamp must be an RFC 3339 UTC timestamp ending in Z (e.g. 2025-01-08T10:30:00.123456Z), got ${JSON.stringify(vqt.timestamp)}`;
      }
      tsUs = parsed;
    }

    const value = vqt.value;
    if (value === null) {
      if (!NULL_QUALITIES.has(quality)) {
        return `value.value is null, which requires quality Bad or GoodNoData (got ${quality})`;
      }
    } else {
      if (NULL_QUALITIES.has(quality)) return `quality ${quality} means no value: value.value must be null`;
      const problem = this.schemas.validateObject(object, value);
      if (problem) return `${problem} (object type ${object.typeElementId})`;
    }

    return { elementId: object.elementId, tsUs, vqt: { value, quality, timestamp: formatTimestampUs(tsUs) } };
  }
}

function toChange(point: PointWrite): ValueChange {
  return { elementId: point.elementId, vqt: point.vqt };
}
