/**
 * JSON schemas for the i3X routes: one source for request validation, response serialization and the
 * OpenAPI document. Request schemas never forbid unknown properties (clients may send more than we read);
 * response schemas list exactly what the guide defines, so nothing internal leaks onto the wire.
 */

import { QUALITIES } from "../domain/model.js";
import { VQT_KEYS } from "../domain/vqt-wire.js";

type Schema = Record<string, unknown>;

const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;
const anyValue = { description: "Any JSON value" } as const;
const openObject = { type: "object", additionalProperties: true } as const;

export const responseDetail = {
  type: "object",
  description: "Problem details (RFC 9457 style)",
  properties: { title: str, status: { type: "integer" }, detail: str },
  required: ["title", "status", "detail"],
} as const;

export const failure = {
  type: "object",
  description: "Failure envelope",
  properties: { success: bool, responseDetail },
  required: ["success", "responseDetail"],
} as const;

/** `{ success, result }` with an optional informational `responseDetail`. */
export function success(result: Schema): Schema {
  return {
    type: "object",
    properties: { success: bool, result, responseDetail },
    required: ["success", "result"],
  };
}

/** The bulk envelope: one item per requested id, in request order. */
export function bulk(key: "elementId" | "subscriptionId", result: Schema): Schema {
  return {
    type: "object",
    properties: {
      success: { type: "boolean", description: "false when any item failed" },
      results: {
        type: "array",
        items: {
          type: "object",
          properties: { success: bool, [key]: str, result, responseDetail },
          required: ["success", key],
        },
      },
      responseDetail,
    },
    required: ["success", "results"],
  };
}

/** Standard response map: the 2xx body plus the failure envelope for every error status. */
export function responses(ok: Schema, options: { partial?: boolean } = {}): Record<string, Schema> {
  const out: Record<string, Schema> = { 200: ok };
  if (options.partial) out[206] = { ...ok, description: "Partial result: a server limit was reached" };
  out["4xx"] = failure;
  out["5xx"] = failure;
  return out;
}

// ---- address space ------------------------------------------------------------------------------------

export const namespace = {
  type: "object",
  properties: { uri: str, displayName: str },
  required: ["uri", "displayName"],
} as const;

export const objectType = {
  type: "object",
  properties: {
    elementId: str,
    displayName: str,
    namespaceUri: str,
    sourceTypeId: str,
    version: str,
    schema: { ...openObject, description: "JSON Schema of the type's value" },
    related: {
      type: "object",
      properties: { relationshipType: str, types: { type: "array", items: str } },
    },
  },
  required: ["elementId", "displayName", "namespaceUri", "sourceTypeId", "schema"],
} as const;

export const relationshipType = {
  type: "object",
  properties: { elementId: str, displayName: str, namespaceUri: str, relationshipId: str, reverseOf: str },
  required: ["elementId", "displayName", "namespaceUri", "relationshipId", "reverseOf"],
} as const;

export const objectMetadata = {
  type: "object",
  properties: {
    description: str,
    typeNamespaceUri: str,
    sourceTypeId: str,
    relationships: {
      type: "object",
      description: "Outgoing edges by relationship type: an elementId or a list of elementIds",
      additionalProperties: true,
    },
    schemaExtensions: openObject,
    system: { ...openObject, description: "Opaque platform data; clients must not rely on its keys" },
  },
  required: ["typeNamespaceUri", "sourceTypeId"],
} as const;

export const objectInstance = {
  type: "object",
  properties: {
    elementId: str,
    displayName: str,
    typeElementId: str,
    parentId: { type: ["string", "null"], description: "null for root objects" },
    isComposition: bool,
    isExtended: bool,
    metadata: objectMetadata,
  },
  required: ["elementId", "displayName", "typeElementId", "parentId", "isComposition", "isExtended"],
} as const;

export const relatedEntry = {
  type: "object",
  properties: { sourceRelationship: str, object: objectInstance },
  required: ["sourceRelationship", "object"],
} as const;

// ---- values -------------------------------------------------------------------------------------------

export const quality = { type: "string", enum: QUALITIES } as const;
export const timestamp = { type: "string", description: "RFC 3339 UTC" } as const;

/** A VQT's properties in `VQT_KEYS` order, the order the stores render stored points in. */
const vqtProperties = Object.fromEntries(
  VQT_KEYS.map((key) => [key, { value: anyValue, quality, timestamp }[key]]),
) as { value: typeof anyValue; quality: typeof quality; timestamp: typeof timestamp };

export const vqt = {
  type: "object",
  properties: vqtProperties,
  required: VQT_KEYS,
} as const;

/** A component's VQT; a component that is itself a composition nests its own `components` map. */
const componentValue = {
  type: "object",
  properties: {
    ...vqtProperties,
    components: { ...openObject, description: "Nested components, keyed by elementId, same shape" },
  },
  required: VQT_KEYS,
} as const;

export const currentValueResult = {
  type: "object",
  properties: {
    isComposition: bool,
    ...vqtProperties,
    components: {
      type: "object",
      description: "Component values keyed by elementId (maxDepth other than 1, compositions only)",
      additionalProperties: componentValue,
    },
  },
  required: ["isComposition", ...VQT_KEYS],
} as const;

const componentHistory = {
  type: "object",
  properties: {
    values: { type: "array", items: vqt },
    components: { ...openObject, description: "Nested components, keyed by elementId, same shape" },
  },
  required: ["values"],
} as const;

export const historyResult = {
  type: "object",
  properties: {
    isComposition: bool,
    values: { type: "array", items: vqt, description: "Ascending by timestamp" },
    components: {
      type: "object",
      description: "Component histories keyed by elementId (maxDepth other than 1, compositions only)",
      additionalProperties: componentHistory,
    },
  },
  required: ["isComposition", "values"],
} as const;

// ---- requests -----------------------------------------------------------------------------------------

export function elementIds(maxItems: number): Schema {
  return {
    type: "array",
    minItems: 1,
    maxItems,
    items: str,
    description: `One or more elementIds (at most ${maxItems})`,
  };
}

export const maxDepth = {
  type: "integer",
  minimum: 0,
  default: 1,
  description: "HasComponent levels: 1 = the element only, N = N levels, 0 = all (within server limits)",
} as const;

export function idsBody(
  maxItems: number,
  extra: Record<string, Schema> = {},
  required: string[] = [],
): Schema {
  return {
    type: "object",
    properties: { elementIds: elementIds(maxItems), ...extra },
    required: ["elementIds", ...required],
  };
}

export const namespaceFilter = {
  type: "object",
  properties: { namespaceUri: { ...str, description: "Only types of this namespace" } },
} as const;

/**
 * A boolean in a query string. Request bodies are validated without type coercion (a JSON body says what
 * it means), so query flags are spelled out as their two literal strings and parsed by `queryFlag`.
 */
const queryBool = { type: "string", enum: ["true", "false"] } as const;

export function queryFlag(value: string | undefined): boolean | undefined {
  return value === undefined ? undefined : value === "true";
}

export const objectsFilter = {
  type: "object",
  properties: {
    typeElementId: { ...str, description: "Only objects of this type" },
    includeMetadata: { ...queryBool, default: "false", description: "Add each object's metadata" },
    root: { ...queryBool, description: "true: only root objects (parentId null); false: no restriction" },
  },
} as const;
