import { LRUCache } from "lru-cache";
import type { ObjectRecord, ObjectType, RelationshipType, Vqt } from "../../domain/model.js";
import type { ModelDocument } from "../../model/format.js";
import { getLogger } from "../../observability/logger.js";
import { type CacheLookups, cacheLookupsOf } from "../../observability/metrics.js";
import type { PointWrite, Store, WriteMode } from "../store.js";
import { PassThroughStore } from "./pass-through.js";

const log = getLogger("i3xd.store");

/**
 * The cache a read may be answered from synchronously, asked per read (tracing may hand a recording view of
 * it to a sampled request), or `undefined` without a cache. Built by the composition root and given to the
 * services that read through it.
 */
export type CacheAccess = () => CachedStore | undefined;

/** Label values of `cache_hits_total` / `cache_misses_total` (observability contract §3). */
export type CacheType = "object" | "type" | "relationship_type" | "value";

/**
 * One keyed cache in front of one batch read. Misses are read from the store in a single call; the
 * answer is kept only when no invalidation happened while it was being read, so a write racing a read
 * can never leave the value from before the write behind.
 */
class ReadThrough<V extends object> {
  private readonly lru: LRUCache<string, V>;
  /** Bumped by every invalidation of this cache. */
  private epoch = 0;
  private readonly counts: CacheLookups;

  constructor(
    readonly type: CacheType,
    max: number,
  ) {
    this.lru = new LRUCache<string, V>({ max });
    // Series exist from the start, so a hit ratio is defined before the first look-up.
    this.counts = cacheLookupsOf(type);
  }

  async get(ids: readonly string[], load: (ids: readonly string[]) => Promise<Map<string, V>>) {
    const found = new Map<string, V>();
    let missing: Set<string> | undefined;
    let missCount = 0;
    for (const id of ids) {
      const v = this.lru.get(id);
      if (v !== undefined) {
        found.set(id, v);
      } else {
        missCount++;
        if (missing === undefined) missing = new Set();
        missing.add(id);
      }
    }
    this.counts.hits += ids.length - missCount;
    if (missing === undefined) return found;
    this.counts.misses += missCount;
    if (log.isLevelEnabled("debug")) {
      log.debug(
        { cache_type: this.type, requested: ids.length, misses: missCount },
        "Cache miss, reading store",
      );
    }
    const epoch = this.epoch;
    const loaded = await load([...missing]);
    const keep = epoch === this.epoch;
    for (const [id, v] of loaded) {
      // Shared between requests from now on: freezing turns an accidental mutation into an error.
      Object.freeze(v);
      if (keep) this.lru.set(id, v);
      found.set(id, v);
    }
    return found;
  }

  /** The cached entry without counting it: for a caller that counts once it has answered a whole read. */
  peek(id: string): V | undefined {
    return this.lru.get(id);
  }

  countHits(n: number): void {
    this.counts.hits += n;
  }

  delete(ids: Iterable<string>): void {
    this.epoch++;
    for (const id of ids) this.lru.delete(id);
  }

  clear(): void {
    this.epoch++;
    this.lru.clear();
  }

  get size(): number {
    return this.lru.size;
  }
}

function listingKey(filter?: { typeElementId?: string; root?: boolean }): string {
  return `${filter?.root === undefined ? "" : filter.root ? "r" : "n"}:${filter?.typeElementId ?? ""}`;
}

/**
 * The store with an in-process LRU in front of its hottest reads: objects, object types, relationship
 * types and current values. Lists, relationships and history go straight through. Every write made
 * through it invalidates what it touches; writes made elsewhere (another replica) reach it through
 * `invalidateValues` / `invalidateAll`, e.g. from a change feed.
 */
export class CachedStore extends PassThroughStore {
  private readonly objects: ReadThrough<ObjectRecord>;
  private readonly objectTypes: ReadThrough<ObjectType>;
  private readonly relationshipTypes: ReadThrough<RelationshipType>;
  private readonly values: ReadThrough<Vqt>;
  /**
   * Object listings by filter. The address space changes only through `importModel` and `removeObjects`
   * (or, elsewhere, through `invalidateAll`), so a listing stays valid until then; `GET /objects` then
   * costs no query.
   */
  private readonly listings = new Map<string, readonly ObjectRecord[]>();
  private listingEpoch = 0;

  constructor(inner: Store, maxEntries: number) {
    if (!(maxEntries > 0)) throw new RangeError("CachedStore needs maxEntries > 0");
    super(inner);
    this.objects = new ReadThrough("object", maxEntries);
    this.objectTypes = new ReadThrough("type", maxEntries);
    this.relationshipTypes = new ReadThrough("relationship_type", maxEntries);
    this.values = new ReadThrough("value", maxEntries);
  }

  override close(): Promise<void> {
    this.invalidateAll();
    return this.inner.close();
  }

  override getObjectTypes(ids: readonly string[]): Promise<Map<string, ObjectType>> {
    return this.objectTypes.get(ids, (missing) => this.inner.getObjectTypes(missing));
  }

  override getRelationshipTypes(ids: readonly string[]): Promise<Map<string, RelationshipType>> {
    return this.relationshipTypes.get(ids, (missing) => this.inner.getRelationshipTypes(missing));
  }

  /** The cached listing for `filter` (the same array until the model changes), or `undefined`. */
  cachedListing(filter?: { typeElementId?: string; root?: boolean }): readonly ObjectRecord[] | undefined {
    return this.listings.get(listingKey(filter));
  }

  override async listObjects(filter?: { typeElementId?: string; root?: boolean }): Promise<ObjectRecord[]> {
    const key = listingKey(filter);
    const cached = this.listings.get(key);
    if (cached !== undefined) return cached as ObjectRecord[];
    const epoch = this.listingEpoch;
    const records = await this.inner.listObjects(filter);
    // Shared between requests from now on, like every cached record.
    for (const r of records) Object.freeze(r);
    Object.freeze(records);
    // Bounded: filters name types, so distinct keys are few; beyond the bound listings are not kept.
    if (epoch === this.listingEpoch && this.listings.size < 1024) this.listings.set(key, records);
    return records;
  }

  override getObjects(ids: readonly string[]): Promise<Map<string, ObjectRecord>> {
    return this.objects.get(ids, (missing) => this.inner.getObjects(missing));
  }

  override getCurrentValues(ids: readonly string[]): Promise<Map<string, Vqt>> {
    return this.values.get(ids, (missing) => this.inner.getCurrentValues(missing));
  }

  /**
   * Synchronous look-ups for reads the cache can answer whole, without a promise per call: `undefined`
   * when the entry is not cached (absent ids included). Nothing is counted here; a caller that answered a
   * read from these reports it with `countCachedReads`, as `getObjects` / `getCurrentValues` would have.
   */
  cachedObject(id: string): ObjectRecord | undefined {
    return this.objects.peek(id);
  }

  cachedValue(id: string): Vqt | undefined {
    return this.values.peek(id);
  }

  /** Hits of a read answered by `cachedObject` / `cachedValue`: the distinct ids looked up in each. */
  countCachedReads(objects: number, values: number): void {
    this.objects.countHits(objects);
    this.values.countHits(values);
  }

  override async writePoints(points: readonly PointWrite[], mode: WriteMode): Promise<PointWrite[]> {
    const ids = new Set<string>();
    for (const p of points) ids.add(p.elementId);
    // Before and after: a read that started before the write must not cache what it saw.
    this.values.delete(ids);
    try {
      return await this.inner.writePoints(points, mode);
    } finally {
      this.values.delete(ids);
    }
  }

  override importModel(model: ModelDocument): Promise<void> {
    return this.modelChange(() => this.inner.importModel(model));
  }

  override removeObjects(elementIds: readonly string[]): Promise<string[]> {
    // Everything, as for an import: compositions above the removed objects change too.
    return this.modelChange(() => this.inner.removeObjects(elementIds));
  }

  /**
   * A model change drops everything before (no read started now may keep what it finds) and after (no
   * read that raced the change may have kept the old model).
   */
  private async modelChange<T>(change: () => Promise<T>): Promise<T> {
    this.invalidateAll();
    try {
      return await change();
    } finally {
      this.invalidateAll();
    }
  }

  /** Drops cached current values, e.g. when another replica wrote them. */
  invalidateValues(ids: Iterable<string>): void {
    this.values.delete(ids);
  }

  /** Drops everything cached, e.g. after a model change made elsewhere. */
  invalidateAll(): void {
    this.listingEpoch++;
    this.listings.clear();
    this.objects.clear();
    this.objectTypes.clear();
    this.relationshipTypes.clear();
    this.values.clear();
  }

  /** Entries held per cache (for diagnostics and tests). */
  sizes(): Record<CacheType, number> {
    return {
      object: this.objects.size,
      type: this.objectTypes.size,
      relationship_type: this.relationshipTypes.size,
      value: this.values.size,
    };
  }
}
