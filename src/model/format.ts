import type { JsonSchema, Namespace, Quality, RelationshipType } from "../domain/model.js";

/**
 * The model document `i3xd import` loads (documented in docs/model-format.md). Hierarchy comes from
 * `parentId`; composition and graph edges from `relationships`, each given once: the store adds the
 * reverse edge named by the relationship type's `reverseOf`, and `isComposition` follows from
 * `HasComponent` edges.
 */
export interface ModelDocument {
  namespaces: Namespace[];
  objectTypes: ModelObjectType[];
  relationshipTypes: RelationshipType[];
  objects: ModelObject[];
  relationships?: ModelRelationship[];
  /** Initial current values. */
  values?: ModelValue[];
  /** Initial history points. */
  history?: ModelValue[];
}

export interface ModelObjectType {
  elementId: string;
  displayName: string;
  namespaceUri: string;
  sourceTypeId?: string;
  version?: string;
  schema: JsonSchema;
  related?: { relationshipType: string; types: string[] };
}

export interface ModelObject {
  elementId: string;
  displayName: string;
  typeElementId: string;
  parentId?: string | null;
  description?: string;
  isExtended?: boolean;
  schemaExtensions?: Record<string, unknown>;
  system?: Record<string, unknown>;
}

export interface ModelRelationship {
  sourceId: string;
  relationshipType: string;
  targetId: string;
}

export interface ModelValue {
  elementId: string;
  value: unknown;
  quality?: Quality;
  timestamp: string;
}
