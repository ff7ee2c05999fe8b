import {
  HAS_CHILDREN,
  HAS_COMPONENT,
  type ObjectRecord,
  type ObjectType,
  type RelationshipType,
} from "../domain/model.js";
import type { ModelDocument, ModelObject, ModelObjectType } from "../model/format.js";
import { type KnownIds, ModelValidationError, validateModel } from "../model/validate.js";
import type { Store } from "../store/store.js";
import { CONNECTOR_FIELD, connectorOf } from "./connectors.js";
import { unique } from "./model.js";

/**
 * The one model-write path for changes made while the server runs (connectors creating what they find,
 * and removing what their source no longer has).
 * A change is validated as `i3xd import` validates a file, against what the store holds, and loaded with
 * `store.importModel` in one transaction: the cache in front of the store drops what it held, and on
 * PostgreSQL the import NOTIFYs the other replicas, whose caches do the same. Pieces already stored as
 * given are left out, so applying the same change again writes nothing and invalidates nothing.
 */
export class ModelWriteService {
  constructor(private readonly store: Store) {}

  /**
   * Applies `change` on behalf of `owner` (a connector name): every object it creates carries
   * `system.connector = owner`, and an object that exists but belongs to someone else is refused, so a
   * connector can never take over objects it did not create. Throws `ModelValidationError` naming every
   * problem; nothing is stored then.
   */
  async apply(owner: string, change: Partial<ModelDocument>): Promise<void> {
    const objects = (change.objects ?? []).map((o) => ({
      ...o,
      system: { ...(o.system ?? {}), [CONNECTOR_FIELD]: owner },
    }));
    const doc: ModelDocument = {
      namespaces: change.namespaces ?? [],
      objectTypes: change.objectTypes ?? [],
      relationshipTypes: change.relationshipTypes ?? [],
      objects,
      relationships: change.relationships ?? [],
      values: change.values ?? [],
      history: change.history ?? [],
    };
    const source = `connector "${owner}"`;
    const stored = await this.storedFor(doc);
    const taken = objects
      .map((o) => stored.objects.get(o.elementId))
      .filter((o): o is ObjectRecord => o !== undefined && connectorOf(o) !== owner);
    if (taken.length > 0) {
      throw new ModelValidationError(
        source,
        taken.map((o) => {
          const other = connectorOf(o);
          return `objects (${o.elementId}): already exists and belongs to ${other === undefined ? "no connector" : `connector "${other}"`}`;
        }),
      );
    }

    const fresh: ModelDocument = {
      namespaces: doc.namespaces.filter((n) => !stored.namespaces.has(n.uri)),
      objectTypes: doc.objectTypes.filter((t) => !sameType(t, stored.objectTypes.get(t.elementId))),
      relationshipTypes: doc.relationshipTypes.filter(
        (t) => !sameJson(t, stored.relationshipTypes.get(t.elementId)),
      ),
      objects: objects.filter((o) => !sameObject(o, stored.objects.get(o.elementId))),
      relationships: (doc.relationships ?? []).filter(
        (r) => !stored.edges.has(edgeKey(r.sourceId, r.relationshipType, r.targetId)),
      ),
      values: doc.values,
      history: doc.history,
    };
    const empty =
      fresh.namespaces.length +
        fresh.objectTypes.length +
        fresh.relationshipTypes.length +
        fresh.objects.length +
        (fresh.relationships?.length ?? 0) +
        (fresh.values?.length ?? 0) +
        (fresh.history?.length ?? 0) ===
      0;
    if (empty) return;
    // The validation needs at least one namespace in the document; the known ones count for references.
    const known: KnownIds = {
      namespaces: new Set(stored.namespaces.keys()),
      objectTypes: new Set([...stored.objectTypes.keys()]),
      relationshipTypes: new Map([...stored.relationshipTypes].map(([id, t]) => [id, t.reverseOf])),
      objects: new Set(stored.objects.keys()),
    };
    const checked = validateModel(
      {
        ...fresh,
        namespaces: fresh.namespaces.length > 0 ? fresh.namespaces : [...stored.namespaces.values()],
      },
      source,
      known,
    );
    await this.store.importModel({ ...checked, namespaces: fresh.namespaces });
  }

  /** The objects and object types the store holds among these ids (for `ConnectorContext.readModel`). */
  async read(
    objectIds: readonly string[],
    typeIds: readonly string[],
  ): Promise<{ objects: ModelObject[]; objectTypes: ModelObjectType[] }> {
    const [objects, objectTypes] = await Promise.all([
      objectIds.length > 0 ? this.store.getObjects(unique(objectIds)) : new Map<string, ObjectRecord>(),
      typeIds.length > 0 ? this.store.getObjectTypes(unique(typeIds)) : new Map<string, ObjectType>(),
    ]);
    return { objects: [...objects.values()], objectTypes: [...objectTypes.values()] };
  }

  /**
   * Removes objects on behalf of `owner`, with everything below them (components and hierarchical
   * children, to any depth), their relationships in both directions, current values and history, in one
   * transaction (`store.removeObjects`): caches drop what they held, other replicas are told. Every object
   * removed must belong to `owner`, so a connector can never remove what it did not create; otherwise
   * `ModelValidationError` names each foreign object and nothing is removed. Ids that name no object are
   * skipped, so removing again changes nothing. Returns the ids removed.
   */
  async remove(owner: string, elementIds: readonly string[]): Promise<string[]> {
    const below = await this.objectsBelow(elementIds);
    if (below.size === 0) return [];
    const foreign = [...below.values()].filter((o) => connectorOf(o) !== owner);
    if (foreign.length > 0) {
      throw new ModelValidationError(
        `connector "${owner}"`,
        foreign.map((o) => {
          const other = connectorOf(o);
          return `objects (${o.elementId}): cannot be removed: it belongs to ${other === undefined ? "no connector" : `connector "${other}"`}`;
        }),
      );
    }
    return this.store.removeObjects([...below.keys()]);
  }

  /** The objects named and every object below them, read level by level as the store holds them. */
  private async objectsBelow(elementIds: readonly string[]): Promise<Map<string, ObjectRecord>> {
    const found = new Map<string, ObjectRecord>();
    let level = unique(elementIds);
    while (level.length > 0) {
      const objects = [...(await this.store.getObjects(level)).values()].filter(
        (o) => !found.has(o.elementId),
      );
      for (const o of objects) found.set(o.elementId, o);
      if (objects.length === 0) break;
      const edges = await this.store.getRelationships(objects.map((o) => o.elementId));
      level = unique(
        edges
          .filter((e) => e.relationshipType === HAS_COMPONENT || e.relationshipType === HAS_CHILDREN)
          .map((e) => e.targetId)
          .filter((id) => !found.has(id)),
      );
    }
    return found;
  }

  /** What the store holds of everything the document names or references, read in a few batch calls. */
  private async storedFor(doc: ModelDocument) {
    const objectIds = unique([
      ...doc.objects.map((o) => o.elementId),
      ...doc.objects.flatMap((o) => (typeof o.parentId === "string" ? [o.parentId] : [])),
      ...(doc.relationships ?? []).flatMap((r) => [r.sourceId, r.targetId]),
      ...(doc.values ?? []).map((v) => v.elementId),
      ...(doc.history ?? []).map((v) => v.elementId),
    ]);
    const typeIds = unique([
      ...doc.objectTypes.map((t) => t.elementId),
      ...doc.objects.map((o) => o.typeElementId),
    ]);
    const [namespaces, objectTypes, relationshipTypes, objects, edges] = await Promise.all([
      this.store.listNamespaces(),
      this.store.getObjectTypes(typeIds),
      this.store.listRelationshipTypes(),
      this.store.getObjects(objectIds),
      (doc.relationships ?? []).length > 0
        ? this.store.getRelationships(unique((doc.relationships ?? []).map((r) => r.sourceId)))
        : Promise.resolve([]),
    ]);
    return {
      namespaces: new Map(namespaces.map((n) => [n.uri, n])),
      objectTypes,
      relationshipTypes: new Map<string, RelationshipType>(relationshipTypes.map((t) => [t.elementId, t])),
      objects,
      edges: new Set(edges.map((e) => edgeKey(e.sourceId, e.relationshipType, e.targetId))),
    };
  }
}

function edgeKey(source: string, type: string, target: string): string {
  return JSON.stringify([source, type, target]);
}

function sameType(given: ModelObjectType, stored: ObjectType | undefined): boolean {
  if (stored === undefined) return false;
  return (
    given.displayName === stored.displayName &&
    given.namespaceUri === stored.namespaceUri &&
    (given.sourceTypeId ?? given.elementId) === stored.sourceTypeId &&
    given.version === stored.version &&
    sameJson(given.schema, stored.schema) &&
    sameJson(given.related, stored.related)
  );
}

function sameObject(given: ModelObject, stored: ObjectRecord | undefined): boolean {
  if (stored === undefined) return false;
  return (
    given.displayName === stored.displayName &&
    given.typeElementId === stored.typeElementId &&
    (given.parentId ?? null) === stored.parentId &&
    given.description === stored.description &&
    (given.isExtended ?? false) === stored.isExtended &&
    sameJson(given.system, stored.system) &&
    sameJson(given.schemaExtensions, stored.schemaExtensions)
  );
}

/** Equal as JSON, whatever the order of object keys (a store may hand keys back in its own order). */
function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_key, value: unknown) =>
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : value,
  );
}
