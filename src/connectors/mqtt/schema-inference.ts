import type { JsonSchema } from "../../domain/model.js";

/**
 * Object type schemas inferred from payloads. The first value gives the schema; every later value that the
 * schema refuses widens it so that it accepts both, never narrows it: a value once accepted stays valid.
 * Every number is a `number`, never an `integer`: a source that reports 20 today may report 20.5 tomorrow,
 * and a client writing 20.5 should not be refused in between. Differing kinds become a `type` list (`["number","string"]`)
 * or, once an object or array is among them, an `anyOf`. Objects list their members as optional
 * `properties` and accept others; arrays describe their items together.
 */

type Kind = "null" | "boolean" | "integer" | "number" | "string" | "array" | "object";

/** One schema per JSON kind present; number subsumes integer. */
type Shape = Map<Kind, JsonSchema>;

/** Bounds on what inference walks, so that a hostile payload cannot make a huge schema. */
const MAX_DEPTH = 16;
const MAX_PROPERTIES = 1000;

export function inferSchema(value: unknown): JsonSchema {
  return emit(shapeOf(value, 0));
}

/** The narrowest schema (of the inferred forms) accepting everything `schema` and `value` accept. */
export function widenSchema(schema: JsonSchema, value: unknown): JsonSchema {
  if (acceptsScalar(schema, value)) return schema;
  const known = parse(schema);
  // A schema without a type accepts everything already.
  if (known.size === 0) return schema;
  const widened = emit(merge(known, shapeOf(value, 0)));
  return JSON.stringify(widened) === JSON.stringify(schema) ? schema : widened;
}

/** Merges two inferred schemas (used when one type is seen with two shapes). */
function unionSchemas(a: JsonSchema, b: JsonSchema): JsonSchema {
  return emit(merge(parse(a), parse(b)));
}

/** A quick yes for the common case, a scalar of a kind the schema already lists; false means "look closer". */
function acceptsScalar(schema: JsonSchema, value: unknown): boolean {
  if (value !== null && typeof value === "object") return false;
  const kind = kindOf(value);
  const type = schema.type;
  if (type === kind || (kind === "integer" && type === "number")) return true;
  return Array.isArray(type) && (type.includes(kind) || (kind === "integer" && type.includes("number")));
}

function kindOf(value: unknown): Kind {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  switch (typeof value) {
    case "boolean":
      return "boolean";
    case "number":
      return "number";
    case "string":
      return "string";
    default:
      return "object";
  }
}

function shapeOf(value: unknown, depth: number): Shape {
  const kind = kindOf(value);
  const shape: Shape = new Map();
  if (kind === "object") {
    const properties: Record<string, JsonSchema> = {};
    if (depth < MAX_DEPTH) {
      let n = 0;
      for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
        if (++n > MAX_PROPERTIES) break;
        properties[key] = emit(shapeOf(member, depth + 1));
      }
    }
    shape.set("object", { type: "object", properties });
  } else if (kind === "array") {
    let items: Shape = new Map();
    if (depth < MAX_DEPTH)
      for (const item of value as unknown[]) items = merge(items, shapeOf(item, depth + 1));
    shape.set("array", items.size > 0 ? { type: "array", items: emit(items) } : { type: "array" });
  } else shape.set(kind, { type: kind });
  return shape;
}

function merge(a: Shape, b: Shape): Shape {
  const out: Shape = new Map(a);
  for (const [kind, schema] of b) {
    const known = out.get(kind);
    if (!known) out.set(kind, schema);
    else if (kind === "object") out.set(kind, mergeObjects(known, schema));
    else if (kind === "array") out.set(kind, mergeArrays(known, schema));
  }
  if (out.has("number") && out.has("integer")) out.delete("integer");
  return out;
}

function mergeObjects(a: JsonSchema, b: JsonSchema): JsonSchema {
  const properties: Record<string, JsonSchema> = { ...(a.properties as Record<string, JsonSchema>) };
  for (const [key, schema] of Object.entries((b.properties ?? {}) as Record<string, JsonSchema>)) {
    const known = properties[key];
    properties[key] = known ? unionSchemas(known, schema) : schema;
  }
  return { type: "object", properties };
}

function mergeArrays(a: JsonSchema, b: JsonSchema): JsonSchema {
  // An array seen without items (empty) says nothing about them; one seen with items adds its shape.
  if (!a.items) return b.items ? b : a;
  if (!b.items) return a;
  return { type: "array", items: unionSchemas(a.items as JsonSchema, b.items as JsonSchema) };
}

const ORDER: Kind[] = ["null", "boolean", "integer", "number", "string", "array", "object"];

function emit(shape: Shape): JsonSchema {
  const kinds = ORDER.filter((k) => shape.has(k));
  if (kinds.length === 0) return {};
  if (kinds.length === 1) return shape.get(kinds[0] as Kind) as JsonSchema;
  if (kinds.every((k) => k !== "object" && k !== "array")) return { type: kinds };
  return { anyOf: kinds.map((k) => shape.get(k) as JsonSchema) };
}

/** Reads back what `emit` produced; an unrecognised schema is kept whole as an opaque branch. */
function parse(schema: JsonSchema): Shape {
  const shape: Shape = new Map();
  if (Array.isArray(schema.anyOf)) {
    let out: Shape = new Map();
    for (const branch of schema.anyOf as JsonSchema[]) out = merge(out, parse(branch));
    return out;
  }
  const type = schema.type;
  if (Array.isArray(type)) for (const k of type as Kind[]) shape.set(k, { type: k });
  else if (typeof type === "string") shape.set(type as Kind, schema);
  return shape;
}
