/**
 * The i3X address space as the server holds it. Field names follow the i3X 1.0 wire format so that
 * records pass from the store to the response without renaming.
 */

export const QUALITIES = ["Good", "GoodNoData", "Bad", "Uncertain"] as const;
export type Quality = (typeof QUALITIES)[number];

/** Value, quality, timestamp. `timestamp` is RFC 3339 UTC with a `Z` suffix. */
export interface Vqt {
  value: unknown;
  quality: Quality;
  timestamp: string;
}

export interface Namespace {
  uri: string;
  displayName: string;
}

export type JsonSchema = Record<string, unknown>;

export interface ObjectType {
  elementId: string;
  displayName: string;
  namespaceUri: string;
  sourceTypeId: string;
  version?: string;
  schema: JsonSchema;
  related?: { relationshipType: string; types: string[] };
}

export interface RelationshipType {
  elementId: string;
  displayName: string;
  namespaceUri: string;
  relationshipId: string;
  reverseOf: string;
}

/** What every read of an object shows of it, `metadata` aside. */
export interface ObjectSummary {
  elementId: string;
  displayName: string;
  typeElementId: string;
  parentId: string | null;
  isComposition: boolean;
  isExtended: boolean;
}

/** An object instance. `description`, `system` and `schemaExtensions` surface only inside `metadata`. */
export interface ObjectRecord extends ObjectSummary {
  description?: string;
  system?: Record<string, unknown>;
  schemaExtensions?: Record<string, unknown>;
}

/** One directed edge. The store keeps both directions of every relationship. */
export interface Relationship {
  sourceId: string;
  relationshipType: string;
  targetId: string;
}

/** Built-in relationship types that the rules of the guide depend on. */
export const HAS_PARENT = "HasParent";
export const HAS_CHILDREN = "HasChildren";
export const HAS_COMPONENT = "HasComponent";
export const COMPONENT_OF = "ComponentOf";
