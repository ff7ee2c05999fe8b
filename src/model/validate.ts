import { QUALITIES, type Quality } from "../domain/model.js";
import { parseTimestampUs } from "../domain/time.js";
import type { ModelDocument, ModelObject } from "./format.js";
import { SchemaRegistry } from "./schemas.js";

/** Every problem found in a model document, each naming the file and the element at fault. */
export class ModelValidationError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    const shown = problems.slice(0, 50);
    const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : "";
    super(
      `${source}: invalid model (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  ${shown.join("\n  ")}${more}`,
    );
    this.name = "ModelValidationError";
    this.problems = problems;
  }
}

/** What the store already holds, so an incremental import may reference it. */
export interface KnownIds {
  namespaces: ReadonlySet<string>;
  objectTypes: ReadonlySet<string>;
  relationshipTypes: ReadonlyMap<string, string>;
  objects: ReadonlySet<string>;
}

const NO_KNOWN: KnownIds = {
  namespaces: new Set(),
  objectTypes: new Set(),
  relationshipTypes: new Map(),
  objects: new Set(),
};

export const MAX_ELEMENT_ID_LENGTH = 512;
// Printable means no C0/C1 controls, no line or paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const NON_PRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** Why a string cannot be an elementId (the guide's rules plus a length bound), or null when it can. */
export function elementIdProblem(id: unknown): string | null {
  if (typeof id !== "string") return "must be a string";
  if (id.length === 0) return "must not be empty";
  if (id.length > MAX_ELEMENT_ID_LENGTH) return `must be at most ${MAX_ELEMENT_ID_LENGTH} characters`;
  if (id.trim() !== id) return "must not have leading or trailing white space";
  if (NON_PRINTABLE.test(id)) return "must not contain non-printable characters";
  return null;
}

/**
 * Checks a parsed model document completely (every reference resolves, ids are valid, schemas compile,
 * initial values carry valid timestamps and quality/null pairing) and returns it typed. Collects every
 * problem instead of stopping at the first, so one run of `i3xd import` shows them all.
 */
export function validateModel(doc: unknown, source: string, known: KnownIds = NO_KNOWN): ModelDocument {
  const problems: string[] = [];
  const say = (where: string, id: unknown, text: string) =>
    problems.push(`${where}${typeof id === "string" && id ? ` (${id})` : ""}: ${text}`);

  if (!isPlainObject(doc)) throw new ModelValidationError(source, ["the document must be a JSON object"]);
  findForbiddenKeys(doc, "", problems);
  if (problems.length > 0) throw new ModelValidationError(source, problems);

  const arrays = ["namespaces", "objectTypes", "relationshipTypes", "objects"] as const;
  for (const key of arrays) {
    if (!Array.isArray(doc[key])) say(key, undefined, "must be an array");
  }
  for (const key of ["relationships", "values", "history"] as const) {
    if (doc[key] !== undefined && !Array.isArray(doc[key]))
      say(key, undefined, "must be an array when present");
  }
  if (problems.length > 0) throw new ModelValidationError(source, problems);
  const d = doc as unknown as ModelDocument;

  const namespaces = new Set(known.namespaces);
  for (const [i, ns] of d.namespaces.entries()) {
    const where = `namespaces[${i}]`;
    if (!isPlainObject(ns)) {
      say(where, undefined, "must be an object");
      continue;
    }
    if (typeof ns.uri !== "string" || ns.uri.trim() === "")
      say(where, ns.uri, "uri must be a non-empty string");
    if (typeof ns.displayName !== "string") say(where, ns.uri, "displayName must be a string");
    if (d.namespaces.findIndex((n) => n.uri === ns.uri) !== i) say(where, ns.uri, "duplicate namespace uri");
    namespaces.add(ns.uri);
  }
  if (namespaces.size === 0) say("namespaces", undefined, "at least one namespace is required");

  // The same registry the write path uses, so an imported value passes exactly when a write of it would.
  const schemas = new SchemaRegistry();
  const types = new Set(known.objectTypes);
  for (const [i, t] of d.objectTypes.entries()) {
    const where = `objectTypes[${i}]`;
    if (!isPlainObject(t)) {
      say(where, undefined, "must be an object");
      continue;
    }
    checkId(where, "elementId", t.elementId, say);
    if (typeof t.displayName !== "string") say(where, t.elementId, "displayName must be a string");
    if (!namespaces.has(t.namespaceUri))
      say(where, t.elementId, `namespaceUri "${t.namespaceUri}" is not a known namespace`);
    if (t.version !== undefined && typeof t.version !== "string")
      say(where, t.elementId, "version must be a string");
    if (!isPlainObject(t.schema)) say(where, t.elementId, "schema must be a JSON Schema object");
    else {
      try {
        schemas.register([{ ...t, sourceTypeId: t.sourceTypeId ?? t.elementId }]);
        // Validating any value compiles the schema; a schema that cannot compile throws.
        schemas.validate(t.elementId, null);
      } catch (err) {
        say(where, t.elementId, `schema does not compile: ${(err as Error).message}`);
      }
    }
    if (d.objectTypes.findIndex((o) => o.elementId === t.elementId) !== i)
      say(where, t.elementId, "duplicate elementId");
    types.add(t.elementId);
  }

  const relTypes = new Map(known.relationshipTypes);
  for (const t of d.relationshipTypes) if (isPlainObject(t)) relTypes.set(t.elementId, t.reverseOf);
  for (const [i, t] of d.relationshipTypes.entries()) {
    const where = `relationshipTypes[${i}]`;
    if (!isPlainObject(t)) {
      say(where, undefined, "must be an object");
      continue;
    }
    checkId(where, "elementId", t.elementId, say);
    if (typeof t.displayName !== "string") say(where, t.elementId, "displayName must be a string");
    if (typeof t.relationshipId !== "string") say(where, t.elementId, "relationshipId must be a string");
    if (!namespaces.has(t.namespaceUri))
      say(where, t.elementId, `namespaceUri "${t.namespaceUri}" is not a known namespace`);
    if (typeof t.reverseOf !== "string" || !relTypes.has(t.reverseOf)) {
      say(where, t.elementId, `reverseOf "${t.reverseOf}" is not a registered relationship type`);
    } else if (relTypes.get(t.reverseOf) !== t.elementId) {
      say(where, t.elementId, `reverseOf "${t.reverseOf}" does not name "${t.elementId}" as its own reverse`);
    }
    if (d.relationshipTypes.findIndex((o) => o.elementId === t.elementId) !== i)
      say(where, t.elementId, "duplicate elementId");
  }

  const objects = new Set(known.objects);
  for (const o of d.objects)
    if (isPlainObject(o) && typeof o.elementId === "string") objects.add(o.elementId);
  const parentOf = new Map<string, string>();
  const objectById = new Map<string, ModelObject>();
  for (const [i, o] of d.objects.entries()) {
    const where = `objects[${i}]`;
    if (!isPlainObject(o)) {
      say(where, undefined, "must be an object");
      continue;
    }
    checkId(where, "elementId", o.elementId, say);
    if (typeof o.displayName !== "string") say(where, o.elementId, "displayName must be a string");
    objectById.set(o.elementId, o);
    if (!types.has(o.typeElementId))
      say(where, o.elementId, `typeElementId "${o.typeElementId}" is not a known object type`);
    if (o.parentId !== undefined && o.parentId !== null) {
      if (!objects.has(o.parentId)) say(where, o.elementId, `parentId "${o.parentId}" is not a known object`);
      else if (o.parentId === o.elementId) say(where, o.elementId, "an object cannot be its own parent");
      else parentOf.set(o.elementId, o.parentId);
    }
    for (const key of ["system", "schemaExtensions"] as const) {
      if (o[key] !== undefined && !isPlainObject(o[key])) say(where, o.elementId, `${key} must be an object`);
    }
    if (o.description !== undefined && typeof o.description !== "string")
      say(where, o.elementId, "description must be a string");
    if (d.objects.findIndex((x) => x.elementId === o.elementId) !== i)
      say(where, o.elementId, "duplicate elementId");
  }
  for (const start of parentOf.keys()) {
    const seen = new Set<string>();
    for (let at: string | undefined = start; at !== undefined; at = parentOf.get(at)) {
      if (seen.has(at)) {
        say("objects", start, "parentId chain forms a cycle");
        break;
      }
      seen.add(at);
    }
  }

  for (const [i, r] of (d.relationships ?? []).entries()) {
    const where = `relationships[${i}]`;
    if (!isPlainObject(r)) {
      say(where, undefined, "must be an object");
      continue;
    }
    if (!objects.has(r.sourceId)) say(where, r.sourceId, `sourceId "${r.sourceId}" is not a known object`);
    if (!objects.has(r.targetId)) say(where, r.sourceId, `targetId "${r.targetId}" is not a known object`);
    if (!relTypes.has(r.relationshipType)) {
      say(
        where,
        r.sourceId,
        `relationshipType "${r.relationshipType}" is not a registered relationship type`,
      );
    }
    if (r.relationshipType === "HasParent" || r.relationshipType === "HasChildren") {
      say(where, r.sourceId, "hierarchy comes from parentId; do not list HasParent/HasChildren edges");
    }
  }

  for (const key of ["values", "history"] as const) {
    for (const [i, v] of (d[key] ?? []).entries()) {
      const where = `${key}[${i}]`;
      if (!isPlainObject(v)) {
        say(where, undefined, "must be an object");
        continue;
      }
      if (!objects.has(v.elementId))
        say(where, v.elementId, `elementId "${v.elementId}" is not a known object`);
      if (parseTimestampUs(v.timestamp) === null)
        say(where, v.elementId, `timestamp "${v.timestamp}" is not RFC 3339 UTC (…Z)`);
      const quality: Quality = v.quality ?? "Good";
      if (!QUALITIES.includes(quality))
        say(where, v.elementId, `quality "${String(v.quality)}" is not one of ${QUALITIES.join(", ")}`);
      if (!Object.hasOwn(v, "value")) say(where, v.elementId, "value is required (null for no value)");
      else if (v.value === null && (quality === "Good" || quality === "Uncertain")) {
        say(where, v.elementId, `a null value needs quality Bad or GoodNoData, not ${quality}`);
      } else if (v.value !== null) {
        // Values of objects defined in this document are checked against their type's schema.
        const o = objectById.get(v.elementId);
        if (o && schemas.has(o.typeElementId)) {
          const problem = schemas.validateObject(
            { ...o, parentId: o.parentId ?? null, isComposition: false, isExtended: o.isExtended ?? false },
            v.value,
          );
          if (problem) say(where, v.elementId, problem);
        }
      }
    }
  }

  if (problems.length > 0) throw new ModelValidationError(source, problems);
  return d;
}

function checkId(
  where: string,
  field: string,
  id: unknown,
  say: (w: string, id: unknown, t: string) => void,
): void {
  const problem = elementIdProblem(id);
  if (problem) say(where, typeof id === "string" ? id : undefined, `${field} ${problem}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** JSON.parse keeps `__proto__` as an own key; such keys never belong in a model and could pollute. */
function findForbiddenKeys(v: unknown, at: string, problems: string[], depth = 0): void {
  if (depth > 64) {
    problems.push(`${at || "document"}: nested too deeply`);
    return;
  }
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) findForbiddenKeys(x, `${at}[${i}]`, problems, depth + 1);
  } else if (isPlainObject(v)) {
    for (const key of Object.keys(v)) {
      const path = at ? `${at}.${key}` : key;
      if (FORBIDDEN_KEYS.has(key)) problems.push(`${path}: key "${key}" is not allowed`);
      else findForbiddenKeys(v[key], path, problems, depth + 1);
    }
  }
}
