import { Access, forbiddenItem } from "../domain/access.js";
import { type BulkItem, I3xError, itemError, itemOk } from "../domain/errors.js";
import {
  COMPONENT_OF,
  HAS_PARENT,
  type Namespace,
  type ObjectRecord,
  type ObjectSummary,
  type ObjectType,
  type Relationship,
  type RelationshipType,
} from "../domain/model.js";
import type { CacheAccess } from "../store/decorators/cached.js";
import type { Store } from "../store/store.js";
import { answerFromCache, type BulkOutcome } from "./answers.js";

/** An object as the wire shows it; `metadata` only when the client asked for it. */
export interface ObjectView extends ObjectSummary {
  metadata?: ObjectMetadata;
}

export interface ObjectMetadata {
  description?: string;
  typeNamespaceUri: string;
  sourceTypeId: string;
  relationships?: Record<string, string | string[]>;
  schemaExtensions?: Record<string, unknown>;
  system?: Record<string, unknown>;
}

export interface RelatedEntry {
  sourceRelationship: string;
  object: ObjectView;
}

/** A listing of objects; `source` as in `AnswerSources`, for the listing as a whole. */
export interface ObjectListing {
  objects: readonly ObjectView[];
  source?: object;
}

export interface ObjectFilter {
  typeElementId?: string;
  root?: boolean;
  includeMetadata?: boolean;
}

/**
 * Relationship types that point at one object by definition. `metadata.relationships` names their target
 * as a plain string (as the guide's examples do for `HasParent`); every other type is a list.
 */
const SINGLE_VALUED = new Set([HAS_PARENT, COMPONENT_OF]);

export const elementNotFound = (id: string) => `Element not found: ${id}`;
export const objectTypeNotFound = (id: string) => `Object type not found: ${id}`;
export const relationshipTypeNotFound = (id: string) => `Relationship type not found: ${id}`;

/** Ids in first-seen order without repeats: the store is asked once per id even when a request repeats one. */
export function unique(ids: readonly string[]): string[] {
  return ids.length < 2 ? [...ids] : [...new Set(ids)];
}

/**
 * The Exploratory methods: namespaces, types, objects and their relationships. Every object method takes
 * the request's access first: a denied id is answered with a 403 item and never read, and a denied element
 * is left out of listings, relationships (`related`, `metadata.relationships`) and `parentId`, so a
 * restricted key sees the permitted part of the model as if it were all there is. Types, namespaces and
 * relationship types are shared vocabulary and not restricted.
 */
export class ModelService {
  constructor(
    private readonly store: Store,
    /** The cache reads may be answered from synchronously; none by default. */
    private readonly cache: CacheAccess = () => undefined,
  ) {}

  /**
   * The objects of a listing. Synchronous when the cache holds the listing and no metadata is asked for;
   * then, for a key that sees the whole model, `source` is the cached listing the views were made from.
   */
  listObjects(access: Access, filter: ObjectFilter = {}): ObjectListing | Promise<ObjectListing> {
    return this.cachedListing(access, filter) ?? this.readListing(access, filter);
  }

  private cachedListing(access: Access, filter: ObjectFilter): ObjectListing | undefined {
    const cache = this.cache();
    if (cache === undefined || filter.includeMetadata === true) return undefined;
    const records = cache.cachedListing(storeFilter(access, filter));
    if (records === undefined) return undefined;
    if (!access.restricted) return new CachedListing(records);
    // What a restricted key sees of a listing depends on the key as well as on the listing.
    const visible = visibleRecords(access, records, filter.root === true);
    return { objects: visible.map((r) => baseView(access, r)) };
  }

  /**
   * Objects by id, in request order. Synchronous when every id is cached and no metadata is asked for
   * (a 404 or metadata needs the full read): then `sources` names the cached record of each item.
   */
  listObjectsById(
    access: Access,
    ids: readonly string[],
    includeMetadata = false,
  ): BulkOutcome<ObjectView> | Promise<BulkOutcome<ObjectView>> {
    return this.cachedObjects(access, ids, includeMetadata) ?? this.readObjects(access, ids, includeMetadata);
  }

  private cachedObjects(
    access: Access,
    ids: readonly string[],
    includeMetadata: boolean,
  ): BulkOutcome<ObjectView> | undefined {
    const cache = this.cache();
    if (cache === undefined || includeMetadata) return undefined;
    return answerFromCache(
      access,
      ids,
      (id) => {
        const record = cache.cachedObject(id);
        if (record === undefined) return undefined;
        const view = baseView(access, record);
        // A parent the access hides makes the view differ from what the record alone says.
        return { result: view, source: view.parentId === (record.parentId ?? null) ? record : undefined };
      },
      (distinct) => cache.countCachedReads(distinct, 0),
    );
  }

  listNamespaces(): Promise<Namespace[]> {
    return this.store.listNamespaces();
  }

  listObjectTypes(namespaceUri?: string): Promise<ObjectType[]> {
    return this.store.listObjectTypes(namespaceUri);
  }

  async queryObjectTypes(ids: readonly string[]): Promise<BulkItem<ObjectType>[]> {
    return inRequestOrder(ids, await this.store.getObjectTypes(unique(ids)), objectTypeNotFound);
  }

  listRelationshipTypes(namespaceUri?: string): Promise<RelationshipType[]> {
    return this.store.listRelationshipTypes(namespaceUri);
  }

  async queryRelationshipTypes(ids: readonly string[]): Promise<BulkItem<RelationshipType>[]> {
    return inRequestOrder(ids, await this.store.getRelationshipTypes(unique(ids)), relationshipTypeNotFound);
  }

  private async readListing(access: Access, filter: ObjectFilter): Promise<ObjectListing> {
    const all = await this.store.listObjects(storeFilter(access, filter));
    const records = access.restricted ? visibleRecords(access, all, filter.root === true) : all;
    return { objects: await this.toViews(access, records, filter.includeMetadata === true) };
  }

  private async readObjects(
    access: Access,
    ids: readonly string[],
    includeMetadata: boolean,
  ): Promise<BulkOutcome<ObjectView>> {
    const found = await this.store.getObjects(permitted(access, ids));
    const views = await this.viewMap(access, [...found.values()], includeMetadata);
    const items = ids.map((id) => {
      if (!access.allows(id)) return forbiddenItem<ObjectView>(id);
      const view = views.get(id);
      return view ? itemOk(id, view) : itemError<ObjectView>(id, 404, elementNotFound(id));
    });
    return { items };
  }

  /**
   * Every neighbour of each requested object, in both directions: the store keeps the reverse of every
   * edge, so the outgoing edges of an object already include the inbound ones under their reverse name.
   * `sourceRelationship` is the registered relationship type as seen from the requested object.
   */
  async related(
    access: Access,
    ids: readonly string[],
    relationshipType: string | null | undefined,
    includeMetadata = false,
  ): Promise<BulkItem<RelatedEntry[]>[]> {
    if (relationshipType) {
      const known = await this.store.getRelationshipTypes([relationshipType]);
      if (!known.has(relationshipType)) throw new I3xError(404, relationshipTypeNotFound(relationshipType));
    }
    const found = await this.store.getObjects(permitted(access, ids));
    const edgesBySource = await this.edgesOf(access, [...found.values()], relationshipType ?? undefined);

    const targetIds = new Set<string>();
    for (const edges of edgesBySource.values()) for (const e of edges) targetIds.add(e.targetId);
    const targets = await this.store.getObjects([...targetIds]);
    const views = await this.viewMap(access, [...targets.values()], includeMetadata);

    return ids.map((id) => {
      if (!access.allows(id)) return forbiddenItem(id);
      if (!found.has(id)) return itemError(id, 404, elementNotFound(id));
      const entries: RelatedEntry[] = [];
      for (const edge of edgesBySource.get(id) ?? []) {
        const object = views.get(edge.targetId);
        // An edge whose far end is gone is not a relationship a client could follow.
        if (object) entries.push({ sourceRelationship: edge.relationshipType, object });
      }
      return itemOk(id, entries);
    });
  }

  /** Wire views for records the access permits, in the same order. */
  private async toViews(
    access: Access,
    records: readonly ObjectRecord[],
    includeMetadata: boolean,
  ): Promise<ObjectView[]> {
    if (!includeMetadata) return records.map((r) => baseView(access, r));
    const views = await this.viewMap(access, records, true);
    return records.map((r) => views.get(r.elementId) ?? baseView(access, r));
  }

  private async viewMap(
    access: Access,
    records: readonly ObjectRecord[],
    includeMetadata: boolean,
  ): Promise<Map<string, ObjectView>> {
    const out = new Map<string, ObjectView>();
    if (!includeMetadata) {
      for (const r of records) out.set(r.elementId, baseView(access, r));
      return out;
    }
    const typeIds = unique(records.map((r) => r.typeElementId));
    const [types, edgesBySource] = await Promise.all([
      this.store.getObjectTypes(typeIds),
      this.edgesOf(access, records),
    ]);
    for (const r of records) {
      const type = types.get(r.typeElementId);
      const metadata: ObjectMetadata = {
        typeNamespaceUri: type?.namespaceUri ?? "",
        sourceTypeId: type?.sourceTypeId ?? r.typeElementId,
      };
      if (r.description !== undefined) metadata.description = r.description;
      const relationships = relationshipMap(edgesBySource.get(r.elementId) ?? []);
      if (relationships) metadata.relationships = relationships;
      if (r.isExtended && r.schemaExtensions) metadata.schemaExtensions = r.schemaExtensions;
      if (r.system) metadata.system = r.system;
      else if (r.isExtended) metadata.system = {};
      const view = baseView(access, r);
      view.metadata = metadata;
      out.set(r.elementId, view);
    }
    return out;
  }

  /**
   * Stored edges grouped by source, with the hierarchy edge implied by `parentId` added when the store has
   * no explicit record of it (the guide requires hierarchy to be reachable through relationships). An edge
   * to an element the access denies is not there for this request.
   */
  private async edgesOf(
    access: Access,
    records: readonly ObjectRecord[],
    relationshipType?: string,
  ): Promise<Map<string, Relationship[]>> {
    const bySource = new Map<string, Relationship[]>();
    if (records.length === 0) return bySource;
    const edges = await this.store.getRelationships(
      records.map((r) => r.elementId),
      relationshipType,
    );
    const seen = new Set<string>();
    for (const e of edges) {
      if (!access.allows(e.targetId)) continue;
      const key = `${e.sourceId}\u0000${e.relationshipType}\u0000${e.targetId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const list = bySource.get(e.sourceId);
      if (list) list.push(e);
      else bySource.set(e.sourceId, [e]);
    }
    if (relationshipType === undefined || relationshipType === HAS_PARENT) {
      for (const r of records) {
        if (r.parentId === null || !access.allows(r.parentId)) continue;
        const key = `${r.elementId}\u0000${HAS_PARENT}\u0000${r.parentId}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const edge = { sourceId: r.elementId, relationshipType: HAS_PARENT, targetId: r.parentId };
        const list = bySource.get(r.elementId);
        if (list) list.unshift(edge);
        else bySource.set(r.elementId, [edge]);
      }
    }
    return bySource;
  }
}

/**
 * A cached listing as a key that sees the whole model reads it: the views are made only when asked for,
 * which a route that sends the bytes it rendered for the same source before never does.
 */
class CachedListing implements ObjectListing {
  private views: readonly ObjectView[] | undefined;

  constructor(readonly source: readonly ObjectRecord[]) {}

  get objects(): readonly ObjectView[] {
    if (this.views === undefined) this.views = this.source.map((r) => baseView(Access.everything, r));
    return this.views;
  }
}

/**
 * The listing to ask the store for. `root=false` is "no restriction", not "only non-roots" (ADR 002). For a
 * restricted key, an object whose parent it may not see is one of its roots, which the store cannot tell.
 */
function storeFilter(access: Access, filter: ObjectFilter): { typeElementId?: string; root?: true } {
  const root = filter.root === true && !access.restricted ? true : undefined;
  return { typeElementId: filter.typeElementId, root };
}

/** The records of a listing the access permits; with `rootsOnly`, those without a visible parent. */
function visibleRecords(
  access: Access,
  records: readonly ObjectRecord[],
  rootsOnly: boolean,
): ObjectRecord[] {
  return records.filter(
    (r) => access.allows(r.elementId) && (!rootsOnly || r.parentId === null || !access.allows(r.parentId)),
  );
}

/** Ids in first-seen order without repeats, leaving out those the access denies (they are never read). */
export function permitted(access: Access, ids: readonly string[]): string[] {
  return unique(access.restricted ? ids.filter((id) => access.allows(id)) : ids);
}

/** Bulk items in request order from what a read found; an id it did not find is a 404. */
function inRequestOrder<T>(
  ids: readonly string[],
  found: Map<string, T>,
  notFound: (id: string) => string,
): BulkItem<T>[] {
  return ids.map((id) => {
    const entry = found.get(id);
    return entry ? itemOk(id, entry) : itemError(id, 404, notFound(id));
  });
}

/** A parent the access denies is not shown: the object is a root of the part of the model the key sees. */
function baseView(access: Access, r: ObjectRecord): ObjectView {
  const parentId = r.parentId ?? null;
  return {
    elementId: r.elementId,
    displayName: r.displayName,
    typeElementId: r.typeElementId,
    parentId: parentId !== null && access.allows(parentId) ? parentId : null,
    isComposition: r.isComposition,
    isExtended: r.isExtended,
  };
}

function relationshipMap(edges: readonly Relationship[]): Record<string, string | string[]> | undefined {
  if (edges.length === 0) return undefined;
  // A null prototype keeps a relationship type named like an Object.prototype member an ordinary key.
  const out = Object.create(null) as Record<string, string | string[]>;
  for (const e of edges) {
    if (SINGLE_VALUED.has(e.relationshipType)) {
      if (out[e.relationshipType] === undefined) out[e.relationshipType] = e.targetId;
      continue;
    }
    const list = out[e.relationshipType];
    if (Array.isArray(list)) list.push(e.targetId);
    else out[e.relationshipType] = [e.targetId];
  }
  return out;
}
