import type { Config } from "../config.js";
import { type Access, forbiddenItem } from "../domain/access.js";
import { type BulkItem, I3xError, itemError, itemOk, type ResponseDetail } from "../domain/errors.js";
import type { HistoryReadItem, HistoryReadRange, HistoryReadResult } from "../domain/history-read.js";
import type { ObjectRecord, Vqt } from "../domain/model.js";
import { jsonText, RawJson } from "../domain/raw-json.js";
import { formatTimestampUs, nowUs, parseTimestampUs } from "../domain/time.js";
import type { CacheAccess } from "../store/decorators/cached.js";
import type { HistoryJson, Store } from "../store/store.js";
import { answerFromCache, type BulkOutcome } from "./answers.js";
import { assembleComponents, planDepth, walkComposition } from "./composition.js";
import { connectorOf } from "./connectors.js";
import { elementNotFound, permitted } from "./model.js";

/** A component's value inside a composition read; nests further when the component is a composition. */
export interface ComponentValue extends Vqt {
  components?: Record<string, ComponentValue>;
}

export interface CurrentValueResult extends ComponentValue {
  isComposition: boolean;
}

/** A component's history inside a composition history read; `values` is the JSON array of its VQTs. */
export interface ComponentHistory {
  values: RawJson;
  components?: Record<string, ComponentHistory>;
}

export interface HistoryResult extends ComponentHistory {
  isComposition: boolean;
}

/**
 * Where history older than i3xd's own comes from: the connector that owns an element (the services'
 * connector port). Undefined from it means "nothing to add".
 */
export interface HistorySource {
  /** When false, no element's history is read through, so nothing is looked up for it. */
  readonly readsHistory: boolean;
  readHistory(
    connector: string,
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ): Promise<HistoryReadResult[] | undefined> | undefined;
}

/** Points read through to a source for one element, to go before what i3xd holds. */
interface ReadThrough {
  points: Vqt[];
  truncated: boolean;
}

export interface HistoryQuery {
  elementIds: readonly string[];
  startTime: string;
  endTime: string;
  maxDepth?: number;
}

/**
 * The Query methods: current values and history, with `maxDepth` composition assembly. The request's access
 * comes first: a denied id is a 403 item and never read, and a component it denies is not part of a value.
 */
export class ValueService {
  constructor(
    private readonly store: Store,
    private readonly config: Pick<
      Config,
      "maxCompositionDepth" | "maxHistoryPoints" | "historyReadThroughMaxBytes"
    >,
    /** The cache reads may be answered from synchronously; none by default. */
    private readonly cache: CacheAccess = () => undefined,
    /** History older than i3xd's, read through to the owning connector's source; none by default. */
    private readonly historySource?: HistorySource,
  ) {}

  /**
   * Current values, in request order. Synchronous when no composition is followed and the cache holds
   * every requested element and its value: the common read then costs no promise, no map and no set, and
   * names the cached value each item was made from (`sources`). A 404, GoodNoData or a component needs
   * the full read.
   */
  current(
    access: Access,
    ids: readonly string[],
    maxDepth = 1,
  ): BulkOutcome<CurrentValueResult> | Promise<BulkOutcome<CurrentValueResult>> {
    return this.cachedCurrent(access, ids, maxDepth) ?? this.readCurrent(access, ids, maxDepth);
  }

  private cachedCurrent(
    access: Access,
    ids: readonly string[],
    maxDepth: number,
  ): BulkOutcome<CurrentValueResult> | undefined {
    const cache = this.cache();
    if (cache === undefined) return undefined;
    const plan = planDepth(maxDepth, this.config.maxCompositionDepth);
    if (plan.levels !== 0 || plan.serverLimited) return undefined;
    return answerFromCache(
      access,
      ids,
      (id) => {
        const record = cache.cachedObject(id);
        const v = record === undefined ? undefined : cache.cachedValue(id);
        if (record === undefined || v === undefined) return undefined;
        const result = {
          isComposition: record.isComposition,
          value: v.value,
          quality: v.quality,
          timestamp: v.timestamp,
        };
        // The value stands for the record too: the cache drops every value when the model changes.
        return { result, source: v };
      },
      (distinct) => cache.countCachedReads(distinct, distinct),
    );
  }

  private async readCurrent(
    access: Access,
    ids: readonly string[],
    maxDepth: number,
  ): Promise<BulkOutcome<CurrentValueResult>> {
    const found = await this.store.getObjects(permitted(access, ids));
    const plan = planDepth(maxDepth, this.config.maxCompositionDepth);
    const walk = await walkComposition(access, this.store, [...found.values()], plan, (batch) =>
      this.store.getCurrentValues(batch),
    );
    // One "now" per response: every element without a stored value reports the same read time.
    const now = formatTimestampUs(nowUs());
    const vqtOf = (id: string): ComponentValue => {
      const v = walk.data.get(id);
      return v
        ? { value: v.value, quality: v.quality, timestamp: v.timestamp }
        : { value: null, quality: "GoodNoData", timestamp: now };
    };
    const cut = new Set<string>();
    const items = ids.map((id): BulkItem<CurrentValueResult> => {
      if (!access.allows(id)) return forbiddenItem(id);
      const record = found.get(id);
      if (!record) return itemError(id, 404, elementNotFound(id));
      const result: CurrentValueResult = { isComposition: record.isComposition, ...vqtOf(id) };
      const components = assembleComponents(walk, id, plan.levels, plan, vqtOf, (at) => cut.add(at));
      if (components) result.components = components;
      return itemOk(id, result);
    });
    return { items, partial: depthDetail(cut, this.config.maxCompositionDepth) };
  }

  async history(access: Access, query: HistoryQuery): Promise<BulkOutcome<HistoryResult>> {
    const startUs = parseTimestampUs(query.startTime);
    if (startUs === null) throw new I3xError(400, timeDetail("startTime", query.startTime));
    const endUs = parseTimestampUs(query.endTime);
    if (endUs === null) throw new I3xError(400, timeDetail("endTime", query.endTime));
    if (startUs > endUs) throw new I3xError(400, "startTime must not be later than endTime");

    const ids = query.elementIds;
    const found = await this.store.getObjects(permitted(access, ids));
    const plan = planDepth(query.maxDepth ?? 1, this.config.maxCompositionDepth);
    const limit = this.config.maxHistoryPoints;
    const walk = await walkComposition(access, this.store, [...found.values()], plan, (batch) =>
      this.store.getHistoryJson(batch, { startUs, endUs, limitPerElement: limit }),
    );
    // Without a source that reads history through, none of the look-ups below has anything to find.
    const older = this.historySource?.readsHistory
      ? await this.readThrough(await this.withComponents(found, walk.children), {
          startUs,
          endUs,
          limit,
          maxBytes: this.config.historyReadThroughMaxBytes,
        })
      : new Map<string, ReadThrough>();
    // No point in the range is GoodNoData (the guide's quality table); the entry sits at the range start.
    const noData: Vqt = { value: null, quality: "GoodNoData", timestamp: formatTimestampUs(startUs) };
    const noDataJson = new RawJson(JSON.stringify([noData]));
    const clipped = new Set<string>();
    // Series stay JSON text from the store to the wire: 36,000 points as objects cost more to build,
    // collect and serialize than the read itself.
    const seriesOf = (id: string): ComponentHistory => {
      const slice: HistoryJson | undefined = walk.data.get(id);
      if (slice?.truncated) clipped.add(id);
      const before = older.get(id);
      if (before) return { values: joinSeries(before, slice, limit, () => clipped.add(id)) };
      if (!slice || slice.count === 0) return { values: noDataJson };
      return { values: new RawJson(slice.json) };
    };
    const cut = new Set<string>();
    const items = ids.map((id): BulkItem<HistoryResult> => {
      if (!access.allows(id)) return forbiddenItem(id);
      const record = found.get(id);
      if (!record) return itemError(id, 404, elementNotFound(id));
      const result: HistoryResult = { isComposition: record.isComposition, ...seriesOf(id) };
      const components = assembleComponents(walk, id, plan.levels, plan, seriesOf, (at) => cut.add(at));
      if (components) result.components = components;
      return itemOk(id, result);
    });
    return {
      items,
      partial: historyDetail(clipped, limit, depthDetail(cut, this.config.maxCompositionDepth)),
    };
  }

  /** The requested records and those of every component the walk reached (a composition's members). */
  private async withComponents(
    found: Map<string, ObjectRecord>,
    children: Map<string, string[]>,
  ): Promise<ObjectRecord[]> {
    const components = new Set<string>();
    for (const list of children.values()) for (const id of list) if (!found.has(id)) components.add(id);
    if (components.size === 0) return [...found.values()];
    const more = await this.store.getObjects([...components]);
    return [...found.values(), ...more.values()];
  }

  /**
   * For elements a connector owns whose history in i3xd starts after `range.startUs` (nothing stored at or
   * before it), the older part read through to the connector's source: from the range start to just before
   * i3xd's first point in the range (or the range end). Failures leave i3xd's own history as the answer.
   */
  private async readThrough(
    records: ObjectRecord[],
    range: HistoryReadRange,
  ): Promise<Map<string, ReadThrough>> {
    const out = new Map<string, ReadThrough>();
    const source = this.historySource;
    const owned = records.filter((r) => connectorOf(r) !== undefined && r.system?.source !== undefined);
    if (source === undefined || owned.length === 0) return out;
    const earlier = await this.store.getHistoryJson(
      owned.map((r) => r.elementId),
      { startUs: 0, endUs: range.startUs, limitPerElement: 1 },
    );
    const uncovered = owned.filter((r) => (earlier.get(r.elementId)?.count ?? 0) === 0);
    if (uncovered.length === 0) return out;
    const first = await this.store.getHistoryJson(
      uncovered.map((r) => r.elementId),
      { ...range, limitPerElement: 1 },
    );
    const groups = new Map<string, { connector: string; endUs: number; items: HistoryReadItem[] }>();
    for (const r of uncovered) {
      const slice = first.get(r.elementId);
      const firstUs =
        slice && slice.count > 0
          ? parseTimestampUs((JSON.parse(jsonText(slice.json)) as Vqt[])[0]?.timestamp ?? "")
          : null;
      const endUs = firstUs === null ? range.endUs : firstUs - 1;
      if (endUs < range.startUs) continue;
      const connector = connectorOf(r) as string;
      const key = `${connector}\n${endUs}`;
      const group = groups.get(key) ?? { connector, endUs, items: [] };
      group.items.push({ elementId: r.elementId, source: r.system?.source });
      groups.set(key, group);
    }
    // The byte budget is the whole request's: each read gets its items' share of it.
    const asked = [...groups.values()].reduce((n, g) => n + g.items.length, 0);
    await Promise.all(
      [...groups.values()].map(async (g) => {
        const maxBytes = Math.floor((range.maxBytes * g.items.length) / asked);
        const results = await source
          .readHistory(g.connector, g.items, { ...range, endUs: g.endUs, maxBytes })
          ?.catch(() => undefined);
        for (const [i, result] of (results ?? []).entries()) {
          const item = g.items[i];
          if (item && result.ok && result.points.length > 0) out.set(item.elementId, result);
        }
      }),
    );
    return out;
  }
}

/** Read-through points first, then i3xd's own, at most `limit` in all. */
function joinSeries(
  before: ReadThrough,
  slice: HistoryJson | undefined,
  limit: number,
  clip: () => void,
): RawJson {
  let own: unknown[] | string = slice && slice.count > 0 ? jsonText(slice.json) : "[]";
  // After a cut read-through nothing of i3xd's own follows: the series would skip what the cut left out.
  const room = before.truncated ? 0 : limit - before.points.length;
  if (before.truncated || (slice?.count ?? 0) > room) {
    clip();
    own = (JSON.parse(own) as unknown[]).slice(0, Math.max(0, room));
  }
  const head = JSON.stringify(before.points.slice(0, limit));
  const tail = typeof own === "string" ? own : JSON.stringify(own);
  const joiner = head.length > 2 && tail.length > 2 ? "," : "";
  return new RawJson(`${head.slice(0, -1)}${joiner}${tail.slice(1)}`);
}

function timeDetail(field: string, got: unknown): string {
  return `${field} must be an RFC 3339 UTC timestamp such as 2025-01-08T10:30:00Z, got ${JSON.stringify(got)}`;
}

const LISTED = 10;

function listIds(ids: Set<string>): string {
  const all = [...ids];
  const shown = all.slice(0, LISTED).join(", ");
  return all.length > LISTED ? `${shown} and ${all.length - LISTED} more` : shown;
}

function depthDetail(cut: Set<string>, limit: number): ResponseDetail | undefined {
  if (cut.size === 0) return undefined;
  return {
    title: "Partial Content",
    status: 206,
    detail:
      `Composition deeper than the server limit of ${limit} levels; components below these elements were ` +
      `not returned, query them by elementId: ${listIds(cut)}`,
  };
}

function historyDetail(
  clipped: Set<string>,
  limit: number,
  depth: ResponseDetail | undefined,
): ResponseDetail | undefined {
  if (clipped.size === 0) return depth;
  const text =
    `More than ${limit} points in the range (or more read through to the source than its byte limit) for: ` +
    `${listIds(clipped)}; the earliest were returned, continue with startTime after the last timestamp received`;
  return { title: "Partial Content", status: 206, detail: depth ? `${text}. ${depth.detail}` : text };
}
