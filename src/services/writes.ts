import { type Access, forbiddenItem } from "../domain/access.js";
import type { ChangeFeed, ValueChange } from "../domain/changes.js";
import { type BulkItem, I3xError, itemError, itemOk } from "../domain/errors.js";
import { type ObjectRecord, QUALITIES, type Quality, type Vqt } from "../domain/model.js";
import { formatTimestampUs, nowUs, parseTimestampUs } from "../domain/time.js";
import { SchemaRegistry } from "../model/schemas.js";
import { getLogger } from "../observability/logger.js";
import { dataPointsWritten, storeWriteRejected } from "../observability/metrics.js";
import { type PointWrite, type Store, StoreFullError, type WriteMode } from "../store/store.js";
import { type ConnectorLink, type ConnectorWriteResult, connectorOf } from "./connectors.js";
import { elementNotFound, permitted, unique } from "./model.js";

/** One requested write, as the PUT bodies carry it. `quality` and `timestamp` are checked, not trusted. */
export interface WriteUpdate {
  elementId: string;
  value: { value?: unknown; quality?: unknown; timestamp?: unknown };
}

export type WriteResult = BulkItem<null>;

/** One point a connector received (the contract's `SourcePoint`): already parsed, never routed back to it. */
export interface IngestPoint {
  elementId: string;
  value: unknown;
  quality: Quality;
  tsUs: number;
  /** Stored in history mode: never replaces a newer current value. */
  historical?: boolean;
}

/** What an element of a lost connector shows: `Bad` with no value, or `Uncertain` holding the last one. */
export type LossQuality = "bad" | "uncertain";

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

  /**
   * The connectors, once they run: API writes to an element a connector owns go to its source first
   * (write-back), and are stored only when the source took them.
   */
  private readonly connectors: ConnectorLink | undefined;

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeFeed,
    schemas?: SchemaRegistry,
    connectors?: ConnectorLink,
  ) {
    this.schemas = schemas ?? new SchemaRegistry();
    this.connectors = connectors;
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

  /**
   * Results come back in request order, one per update; an element the access denies is a 403 item. An
   * element a connector owns takes its values from the source: a current-value write goes to the source
   * (write-back) and is stored once the source took it; a history write is refused.
   */
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
    const history = mode === "history";
    const results: WriteResult[] = new Array(updates.length);
    const points: PointWrite[] = [];
    const perType = new Map<string, number>();
    const routed = new Map<string, { index: number; object: ObjectRecord; point: PointWrite }[]>();
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
      const owner = connectorOf(object);
      if (owner !== undefined && history) {
        results[i] = itemError(
          update.elementId,
          409,
          `${update.elementId} belongs to connector "${owner}": its source owns its data, so its history cannot be written here`,
        );
        continue;
      }
      const checked = this.checkItem(object, () => this.check(object, update, mode, receivedUs));
      if (!checked.success) {
        results[i] = checked.error;
        continue;
      }
      if (owner !== undefined) {
        const group = routed.get(owner) ?? [];
        routed.set(owner, group);
        group.push({ index: i, object, point: checked.point });
        continue;
      }
      points.push(checked.point);
      perType.set(object.typeElementId, (perType.get(object.typeElementId) ?? 0) + 1);
      results[i] = itemOk(update.elementId, null);
    }
    for (const [owner, group] of routed) {
      const answers = await this.writeBack(owner, group);
      for (const [j, item] of group.entries()) {
        const answer = answers[j];
        if (!answer.ok) {
          results[item.index] = itemError(item.point.elementId, answer.status, answer.detail);
          continue;
        }
        points.push(item.point);
        perType.set(item.object.typeElementId, (perType.get(item.object.typeElementId) ?? 0) + 1);
        results[item.index] = itemOk(item.point.elementId, null);
      }
    }
    return this.storePoints(points, mode, perType, results);
  }

  /**
   * A connector's points, through the same checks, history, current values, change feed and metrics as an
   * API write; never routed back to the connector. Only elements the connector owns are written (others are
   * a 409 item). Historical points are stored in history mode, so they never replace a newer current value.
   */
  async ingest(connector: string, points: readonly IngestPoint[]): Promise<WriteResult[]> {
    if (points.length === 0) return [];
    const objects = await this.store.getObjects(unique(points.map((p) => p.elementId)));
    const types = await this.store.getObjectTypes(unique([...objects.values()].map((o) => o.typeElementId)));
    this.schemas.register(types.values());
    const results: WriteResult[] = new Array(points.length);
    const byMode = {
      current: { points: [] as PointWrite[], perType: new Map<string, number>(), at: [] as number[] },
      history: { points: [] as PointWrite[], perType: new Map<string, number>(), at: [] as number[] },
    };
    for (let i = 0; i < points.length; i++) {
      const p = points[i];
      const object = objects.get(p.elementId);
      if (!object) {
        results[i] = itemError(p.elementId, 404, elementNotFound(p.elementId));
        continue;
      }
      const owner = connectorOf(object);
      if (owner !== connector) {
        results[i] = itemError(
          p.elementId,
          409,
          owner === undefined
            ? `${p.elementId} was not created by connector "${connector}"`
            : `${p.elementId} belongs to connector "${owner}", not "${connector}"`,
        );
        continue;
      }
      const checked = this.checkItem(object, () => this.checkParsed(object, p.value, p.quality, p.tsUs));
      if (!checked.success) {
        results[i] = checked.error;
        continue;
      }
      const target = p.historical ? byMode.history : byMode.current;
      target.points.push(checked.point);
      target.at.push(i);
      target.perType.set(object.typeElementId, (target.perType.get(object.typeElementId) ?? 0) + 1);
      results[i] = itemOk(p.elementId, null);
    }
    for (const mode of ["current", "history"] as const) {
      const { points: batch, perType, at } = byMode[mode];
      if (batch.length === 0) continue;
      const stored = await this.storePoints(
        batch,
        mode,
        perType,
        at.map((i) => results[i]),
      );
      for (const [j, i] of at.entries()) results[i] = stored[j];
    }
    return results;
  }

  /**
   * The source of a connector is lost: each of its elements that holds a value turns `Bad` (null) or
   * `Uncertain` (holding its last value, or `Bad` when it has none), stamped `atUs`, through the write path.
   * Every element the connector ever created counts, not only those seen since this process started.
   * Returns how many elements were marked.
   */
  async markLost(connector: string, onLoss: LossQuality, atUs: number): Promise<number> {
    const owned = (await this.store.listObjects())
      .filter((o) => connectorOf(o) === connector)
      .map((o) => o.elementId);
    if (owned.length === 0) return 0;
    const current = await this.store.getCurrentValues(owned);
    const lost: IngestPoint[] = [];
    for (const [elementId, vqt] of current) {
      if (vqt.quality === "Bad") continue;
      if (onLoss === "uncertain" && vqt.value !== null) {
        if (vqt.quality !== "Uncertain")
          lost.push({ elementId, value: vqt.value, quality: "Uncertain", tsUs: atUs });
      } else {
        lost.push({ elementId, value: null, quality: "Bad", tsUs: atUs });
      }
    }
    const results = await this.ingest(connector, lost);
    return results.filter((r) => r.success).length;
  }

  private async writeBack(
    connector: string,
    items: readonly { point: PointWrite; object: ObjectRecord }[],
  ): Promise<ConnectorWriteResult[]> {
    const port = this.connectors?.port;
    if (port === undefined) {
      const detail = `connector "${connector}" is not configured on this server: its elements cannot be written`;
      return items.map(() => ({ ok: false, status: 503, detail }));
    }
    return port.writeBack(
      connector,
      items.map(({ point, object }) => ({
        elementId: point.elementId,
        value: point.vqt.value,
        source: object.system?.source,
      })),
    );
  }

  private checkItem(
    object: ObjectRecord,
    check: () => PointWrite | string,
  ): { success: true; point: PointWrite } | { success: false; error: WriteResult } {
    let checked: PointWrite | string;
    try {
      checked = check();
    } catch (err) {
      // A type schema that does not compile is the stored model's fault: that item fails, the rest go on.
      if (!(err instanceof I3xError)) throw err;
      return { success: false, error: itemError(object.elementId, err.status, err.message) };
    }
    if (typeof checked === "string")
      return { success: false, error: itemError(object.elementId, 400, checked) };
    return { success: true, point: checked };
  }

  /** Stores the checked points in one call; `results` holds their items, in the same order as the points. */
  private async storePoints(
    points: PointWrite[],
    mode: WriteMode,
    perType: ReadonlyMap<string, number>,
    results: WriteResult[],
  ): Promise<WriteResult[]> {
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

    return this.checkParsed(object, vqt.value, quality, tsUs);
  }

  /** The value's checks, once quality and timestamp are known to be well-formed. */
  private checkParsed(
    object: ObjectRecord,
    value: unknown,
    quality: Quality,
    tsUs: number,
  ): PointWrite | string {
    if (!QUALITIES.includes(quality))
      return `quality must be one of ${QUALITY_LIST}, got ${JSON.stringify(quality)}`;
    if (!Number.isSafeInteger(tsUs))
      return `timestamp must be whole microseconds since the epoch, got ${tsUs}`;
    if (value === undefined) return "value must be present (null for no value)";
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
