import type {
  Namespace,
  ObjectRecord,
  ObjectType,
  Relationship,
  RelationshipType,
  Vqt,
} from "../../domain/model.js";
import type { ModelDocument } from "../../model/format.js";
import type { HistoryJson, HistoryRange, PointWrite, Store, WriteMode } from "../store.js";

/**
 * A store that hands every call to the store it wraps. Decorators (caching, tracing) extend it and
 * override only the calls they change, so a call added to the port reaches the adapter unchanged.
 */
export class PassThroughStore implements Store {
  readonly kind: Store["kind"];

  constructor(readonly inner: Store) {
    this.kind = inner.kind;
  }

  init(): Promise<void> {
    return this.inner.init();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  connectionCount(): number {
    return this.inner.connectionCount();
  }

  isEmpty(): Promise<boolean> {
    return this.inner.isEmpty();
  }

  listNamespaces(): Promise<Namespace[]> {
    return this.inner.listNamespaces();
  }

  listObjectTypes(namespaceUri?: string): Promise<ObjectType[]> {
    return this.inner.listObjectTypes(namespaceUri);
  }

  getObjectTypes(ids: readonly string[]): Promise<Map<string, ObjectType>> {
    return this.inner.getObjectTypes(ids);
  }

  listRelationshipTypes(namespaceUri?: string): Promise<RelationshipType[]> {
    return this.inner.listRelationshipTypes(namespaceUri);
  }

  getRelationshipTypes(ids: readonly string[]): Promise<Map<string, RelationshipType>> {
    return this.inner.getRelationshipTypes(ids);
  }

  listObjects(filter?: { typeElementId?: string; root?: boolean }): Promise<ObjectRecord[]> {
    return this.inner.listObjects(filter);
  }

  getObjects(ids: readonly string[]): Promise<Map<string, ObjectRecord>> {
    return this.inner.getObjects(ids);
  }

  getRelationships(sourceIds: readonly string[], relationshipType?: string): Promise<Relationship[]> {
    return this.inner.getRelationships(sourceIds, relationshipType);
  }

  getCurrentValues(ids: readonly string[]): Promise<Map<string, Vqt>> {
    return this.inner.getCurrentValues(ids);
  }

  getHistoryJson(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>> {
    return this.inner.getHistoryJson(ids, range);
  }

  writePoints(points: readonly PointWrite[], mode: WriteMode): Promise<PointWrite[]> {
    return this.inner.writePoints(points, mode);
  }

  importModel(model: ModelDocument): Promise<void> {
    return this.inner.importModel(model);
  }

  removeObjects(elementIds: readonly string[]): Promise<string[]> {
    return this.inner.removeObjects(elementIds);
  }
}
