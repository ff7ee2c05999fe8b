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

/** The i3X namespace: home of the built-in relationship types and `UnknownType`. */
export const I3X_NAMESPACE = "https://cesmii.org/i3x";

/** Built-in relationship types that the rules of the guide depend on. */
export const HAS_PARENT = "HasParent";
export const HAS_CHILDREN = "HasChildren";
export const HAS_COMPONENT = "HasComponent";
export const COMPONENT_OF = "ComponentOf";

/** A relationship type and its reverse, as the store wants both registered. */
export function relationshipPair(forward: string, reverse: string, namespaceUri: string): RelationshipType[] {
  return [
    { elementId: forward, displayName: forward, namespaceUri, relationshipId: forward, reverseOf: reverse },
    { elementId: reverse, displayName: reverse, namespaceUri, relationshipId: reverse, reverseOf: forward },
  ];
}

/** The hierarchy and composition relationship types every model needs. */
export function builtInRelationshipTypes(): RelationshipType[] {
  return [
    ...relationshipPair(HAS_PARENT, HAS_CHILDREN, I3X_NAMESPACE),
    ...relationshipPair(HAS_COMPONENT, COMPONENT_OF, I3X_NAMESPACE),
  ];
}
