import { type Attributes, context, createContextKey, type Span, SpanKind } from "@opentelemetry/api";
import type {
  Namespace,
  ObjectRecord,
  ObjectType,
  Relationship,
  RelationshipType,
  Vqt,
} from "../../domain/model.js";
import { formatTimestampUs } from "../../domain/time.js";
import type { ModelDocument } from "../../model/format.js";
import {
  inChildSpan,
  recordChildSpan,
  sampledSpanActive,
  tracingEnabled,
} from "../../observability/tracing.js";
import type { HistoryJson, HistoryRange, PointWrite, Store, WriteMode } from "../store.js";
import type { CacheAccess, CachedStore } from "./cached.js";
import { PassThroughStore } from "./pass-through.js";

/** Ids and types listed on a span; a bulk call of thousands of ids records its count and the first few. */
const MAX_LISTED = 32;

/**
 * Set by a cache look-up span for the store call it may make: the repository layer underneath adds the ids
 * it was asked for (the misses), so the look-up span can tell hits from misses without the cache knowing.
 */
const CACHE_LOOKUP = createContextKey("i3xd.cache.lookup");

interface LookupRecord {
  misses: number;
}

function noteCacheMisses(ids: readonly string[]): void {
  const record = context.active().getValue(CACHE_LOOKUP) as LookupRecord | undefined;
  if (record !== undefined) record.misses += ids.length;
}

/** The store with repository spans when tracing is on; the store itself otherwise. */
export function traceStore(store: Store): Store {
  return tracingEnabled() ? new TracingStore(store) : store;
}

/**
 * The in-process cache that reads may be answered from synchronously, asked per request: the cache itself,
 * or, with tracing on, for a request whose trace is sampled, the cache recording the `cache.lookup` spans
 * of what it answers; `undefined` when there is no cache.
 */
export function directCache(cache: CachedStore | undefined): CacheAccess {
  if (cache === undefined) return () => undefined;
  if (!tracingEnabled()) return () => cache;
  return () => (sampledSpanActive() ? lookupRecorder(cache) : cache);
}

/**
 * The cache for one synchronous read of a sampled request. A read answered whole reports its look-ups
 * through `countCachedReads`, and they become the `cache.lookup` spans (all hits) that the full read through
 * `CacheTracingStore` would have made; a read that finds an entry missing is abandoned for the full read,
 * whose look-ups the decorator traces, and records nothing. Sending sampled reads through the decorators
 * only to make these spans (a promise per call, a context per look-up, the full read) cost them about a
 * fifth of their CPU in the benchmark's value read.
 */
function lookupRecorder(cache: CachedStore): CachedStore {
  const startTime = performance.now();
  const recorder: CachedStore = Object.create(cache);
  recorder.countCachedReads = (objects: number, values: number) => {
    cache.countCachedReads(objects, values);
    if (objects > 0) recordLookup("object", objects, startTime);
    if (values > 0) recordLookup("value", values, startTime);
  };
  return recorder;
}

function recordLookup(cacheType: string, ids: number, startTime: number): void {
  recordChildSpan(
    "cache.lookup",
    { "cache.type": cacheType, "cache.requested": ids, ...lookupOutcome(ids, 0) },
    startTime,
  );
}

/** The outcome attributes of a `cache.lookup` span, whichever path recorded it. */
function lookupOutcome(requested: number, misses: number): Attributes {
  return { "cache.misses": misses, "cache.hits": Math.max(0, requested - misses), "cache.hit": misses === 0 };
}

/** The cache with cache look-up spans when tracing is on; the cache itself otherwise. */
export function traceCache(cache: CachedStore): Store {
  return tracingEnabled() ? new CacheTracingStore(cache) : cache;
}

/**
 * Store decorator that puts a child span around every data call (`repository.get_entity`, …) with what was
 * asked for and what came back. Wired in by start-up only when tracing is on, so the store adapters and the
 * services know nothing about tracing. Housekeeping calls (ping, close, connection count) pass straight
 * through: health probes would otherwise make a span every few seconds.
 */
export class TracingStore extends PassThroughStore {
  private readonly spanKind: SpanKind;
  private readonly system: string;

  constructor(inner: Store) {
    super(inner);
    // PostgreSQL is a remote call; SQLite runs inside the process.
    this.spanKind = inner.kind === "postgres" ? SpanKind.CLIENT : SpanKind.INTERNAL;
    this.system = inner.kind === "postgres" ? "postgresql" : "sqlite";
  }

  override listNamespaces(): Promise<Namespace[]> {
    return this.span("repository.list_namespaces", {}, async (span) => {
      const result = await this.inner.listNamespaces();
      span?.setAttribute("result.count", result.length);
      return result;
    });
  }

  override listObjectTypes(namespaceUri?: string): Promise<ObjectType[]> {
    const attributes: Attributes = namespaceUri === undefined ? {} : { "namespace.uri": namespaceUri };
    return this.span("repository.list_entity_types", attributes, async (span) => {
      const result = await this.inner.listObjectTypes(namespaceUri);
      span?.setAttribute("result.count", result.length);
      return result;
    });
  }

  override getObjectTypes(ids: readonly string[]): Promise<Map<string, ObjectType>> {
    noteCacheMisses(ids);
    return this.span("repository.get_entity_type", { ...listed("entity.type", ids) }, async (span) => {
      const result = await this.inner.getObjectTypes(ids);
      span?.setAttribute("result.count", result.size);
      return result;
    });
  }

  override listRelationshipTypes(namespaceUri?: string): Promise<RelationshipType[]> {
    const attributes: Attributes = namespaceUri === undefined ? {} : { "namespace.uri": namespaceUri };
    return this.span("repository.list_relationship_types", attributes, async (span) => {
      const result = await this.inner.listRelationshipTypes(namespaceUri);
      span?.setAttribute("result.count", result.length);
      return result;
    });
  }

  override getRelationshipTypes(ids: readonly string[]): Promise<Map<string, RelationshipType>> {
    noteCacheMisses(ids);
    return this.span("repository.get_relationship_type", listed("relationship.type", ids), async (span) => {
      const result = await this.inner.getRelationshipTypes(ids);
      span?.setAttribute("result.count", result.size);
      return result;
    });
  }

  override listObjects(filter?: { typeElementId?: string; root?: boolean }): Promise<ObjectRecord[]> {
    const attributes: Attributes = {};
    if (filter?.typeElementId !== undefined) attributes["entity.type"] = filter.typeElementId;
    if (filter?.root !== undefined) attributes["entity.root_only"] = filter.root;
    return this.span("repository.list_entities", attributes, async (span) => {
      const result = await this.inner.listObjects(filter);
      span?.setAttribute("result.count", result.length);
      return result;
    });
  }

  override getObjects(ids: readonly string[]): Promise<Map<string, ObjectRecord>> {
    noteCacheMisses(ids);
    return this.span("repository.get_entity", listed("entity.id", ids), async (span) => {
      const result = await this.inner.getObjects(ids);
      if (span) {
        span.setAttribute("result.count", result.size);
        const types = new Set<string>();
        for (const o of result.values()) {
          types.add(o.typeElementId);
          if (types.size >= MAX_LISTED) break;
        }
        if (types.size > 0) span.setAttribute("entity.type", oneOrMany([...types]));
      }
      return result;
    });
  }

  override getRelationships(
    sourceIds: readonly string[],
    relationshipType?: string,
  ): Promise<Relationship[]> {
    const attributes = listed("entity.id", sourceIds);
    if (relationshipType !== undefined) attributes["relationship.type"] = relationshipType;
    return this.span("repository.get_relationships", attributes, async (span) => {
      const result = await this.inner.getRelationships(sourceIds, relationshipType);
      span?.setAttribute("result.count", result.length);
      return result;
    });
  }

  override getCurrentValues(ids: readonly string[]): Promise<Map<string, Vqt>> {
    noteCacheMisses(ids);
    return this.span("repository.get_values", listed("entity.id", ids), async (span) => {
      const result = await this.inner.getCurrentValues(ids);
      span?.setAttribute("result.count", result.size);
      return result;
    });
  }

  override getHistoryJson(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>> {
    return this.span("repository.get_history", historyAttributes(ids, range), async (span) => {
      const result = await this.inner.getHistoryJson(ids, range);
      if (span) {
        let points = 0;
        let truncated = false;
        for (const slice of result.values()) {
          points += slice.count;
          truncated ||= slice.truncated;
        }
        span.setAttributes({ "history.point_count": points, "history.truncated": truncated });
      }
      return result;
    });
  }

  override writePoints(points: readonly PointWrite[], mode: WriteMode): Promise<PointWrite[]> {
    const ids = new Set<string>();
    for (const p of points) {
      ids.add(p.elementId);
      if (ids.size >= MAX_LISTED) break;
    }
    const attributes: Attributes = {
      "write.mode": mode,
      "write.point_count": points.length,
      "entity.id": oneOrMany([...ids]),
    };
    return this.span("repository.write_points", attributes, () => this.inner.writePoints(points, mode));
  }

  override importModel(model: ModelDocument): Promise<void> {
    const attributes: Attributes = {
      "model.object_count": model.objects.length,
    };
    return this.span("repository.import_model", attributes, () => this.inner.importModel(model));
  }

  override removeObjects(elementIds: readonly string[]): Promise<string[]> {
    return this.span("repository.remove_entities", listed("entity.id", elementIds), async (span) => {
      const removed = await this.inner.removeObjects(elementIds);
      span?.setAttribute("result.count", removed.length);
      return removed;
    });
  }

  private span<T>(
    name: string,
    attributes: Attributes,
    fn: (span: Span | undefined) => Promise<T>,
  ): Promise<T> {
    attributes["db.system.name"] = this.system;
    attributes["db.operation.name"] = name.slice("repository.".length);
    return inChildSpan(name, attributes, fn, this.spanKind);
  }
}

function listed(key: string, ids: readonly string[]): Attributes {
  const attributes: Attributes = { "entity.count": ids.length };
  if (ids.length > 0) attributes[key] = oneOrMany(ids.length > MAX_LISTED ? ids.slice(0, MAX_LISTED) : ids);
  return attributes;
}

function oneOrMany(values: readonly string[]): string | string[] {
  return values.length === 1 ? values[0] : [...values];
}

function historyAttributes(ids: readonly string[], range: HistoryRange): Attributes {
  return {
    ...listed("entity.id", ids),
    "history.element_count": ids.length,
    "history.start": safeTimestamp(range.startUs),
    "history.end": safeTimestamp(range.endUs),
    "history.limit_per_element": range.limitPerElement,
  };
}

function safeTimestamp(us: number): string {
  try {
    return formatTimestampUs(us);
  } catch {
    return String(us);
  }
}

/**
 * Spans around the cached reads of a `CachedStore` (`cache.lookup`, with `cache.type` as in the
 * `cache_hits_total` label, and the hit and miss counts). A miss shows as a `repository.*` child span.
 */
export class CacheTracingStore extends PassThroughStore {
  constructor(cache: CachedStore) {
    super(cache);
  }

  override getObjectTypes(ids: readonly string[]): Promise<Map<string, ObjectType>> {
    return this.lookup("type", ids, () => this.inner.getObjectTypes(ids));
  }

  override getRelationshipTypes(ids: readonly string[]): Promise<Map<string, RelationshipType>> {
    return this.lookup("relationship_type", ids, () => this.inner.getRelationshipTypes(ids));
  }

  override getObjects(ids: readonly string[]): Promise<Map<string, ObjectRecord>> {
    return this.lookup("object", ids, () => this.inner.getObjects(ids));
  }

  override getCurrentValues(ids: readonly string[]): Promise<Map<string, Vqt>> {
    return this.lookup("value", ids, () => this.inner.getCurrentValues(ids));
  }

  private lookup<T>(cacheType: string, ids: readonly string[], read: () => Promise<T>): Promise<T> {
    // Every cached read passes here: an unsampled request must not pay for a span it will not record.
    if (!sampledSpanActive()) return read();
    const attributes: Attributes = { "cache.type": cacheType, "cache.requested": ids.length };
    return inChildSpan("cache.lookup", attributes, (span) => {
      if (span === undefined) return read();
      const record: LookupRecord = { misses: 0 };
      return context.with(context.active().setValue(CACHE_LOOKUP, record), async () => {
        const result = await read();
        span.setAttributes(lookupOutcome(ids.length, record.misses));
        return result;
      });
    });
  }
}
