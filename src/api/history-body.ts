import type { ResponseDetail } from "../domain/errors.js";
import type { ComponentHistory } from "../services/values.js";

type Schema = Record<string, unknown>;

/** Text, or a series already in UTF-8 bytes. */
type Piece = string | Uint8Array;

/** Writes one property's value (its key is already written). */
type WriteValue = (value: unknown, out: Piece[]) => void;

/**
 * The history response's serializer, derived from the route's response schema (`bulk("elementId",
 * historyResult)`): the keys the schema lists, in its order, nothing else, but each series written from its
 * JSON text as it is. The schema serializer would need every point as an object: for a 36,000-point read
 * that is most of the response's cost. The pieces go straight into one buffer: as one string, a 3 MB body
 * would be copied whole once more to be measured and encoded, and left in the large-object heap for the
 * next full GC. Only the way each property's value is written is said here, by property name; a schema
 * property without one fails when the route is built. test/api/history-body.test.ts holds the output to
 * the schema and to the schema serializer's bytes.
 */
export function historyBodySerializer(schema: Schema): (payload: unknown) => Buffer {
  const item = child(child(schema, "results"), "items");
  const result = child(item, "result");
  const component = child(child(result, "components"), "additionalProperties");
  const detail = child(schema, "responseDetail");

  const writers: Record<string, WriteValue> = {
    success: bool,
    isComposition: bool,
    elementId: string,
    title: string,
    detail: string,
    status: (v, out) => out.push(String(Math.trunc(v as number))),
    values: (v, out) => out.push((v as ComponentHistory["values"]).json),
    results: (v, out) => {
      const items = v as readonly unknown[];
      out.push("[");
      for (let i = 0; i < items.length; i++) {
        if (i > 0) out.push(",");
        writeItem(items[i], out);
      }
      out.push("]");
    },
    result: (v, out) => writeResult(v, out),
    components: (v, out) => {
      const components = v as Record<string, ComponentHistory>;
      out.push("{");
      let first = true;
      for (const key in components) {
        out.push(`${first ? "" : ","}${JSON.stringify(key)}:`);
        writeComponent(components[key], out);
        first = false;
      }
      out.push("}");
    },
    responseDetail: (v, out) => writeDetail(v as ResponseDetail, out),
  };
  const writeBody = objectWriter(schema, writers);
  const writeItem = objectWriter(item, writers);
  const writeResult = objectWriter(result, writers);
  const writeComponent = objectWriter(component, writers);
  const writeDetail = objectWriter(detail, writers);

  return (payload) => {
    const out: Piece[] = [];
    writeBody(payload, out);
    let length = 0;
    for (const piece of out)
      length += typeof piece === "string" ? Buffer.byteLength(piece) : piece.byteLength;
    const buffer = Buffer.allocUnsafe(length);
    let at = 0;
    for (const piece of out) {
      if (typeof piece === "string") at += buffer.write(piece, at);
      else {
        buffer.set(piece, at);
        at += piece.byteLength;
      }
    }
    return buffer;
  };
}

/** Writes an object with the schema's properties, in the schema's order, leaving out those undefined. */
function objectWriter(schema: Schema, writers: Record<string, WriteValue>): WriteValue {
  const keys = Object.keys(properties(schema));
  const heads = keys.map((key) => `${JSON.stringify(key)}:`);
  const writes = keys.map((key) => {
    const write = writers[key];
    if (write === undefined) throw new Error(`history body: no writer for the schema's property ${key}`);
    return write;
  });
  return (value, out) => {
    const object = value as Record<string, unknown>;
    out.push("{");
    let first = true;
    for (let i = 0; i < keys.length; i++) {
      const v = object[keys[i]];
      if (v === undefined) continue;
      out.push(first ? heads[i] : `,${heads[i]}`);
      writes[i](v, out);
      first = false;
    }
    out.push("}");
  };
}

function properties(schema: Schema): Record<string, Schema> {
  return (schema.properties ?? {}) as Record<string, Schema>;
}

/** A property's schema, or for `items` / `additionalProperties` the schema they hold. */
function child(schema: Schema, key: string): Schema {
  const found = key in properties(schema) ? properties(schema)[key] : schema[key];
  if (found === null || typeof found !== "object") throw new Error(`history body: schema has no ${key}`);
  return found as Schema;
}

function bool(b: unknown, out: Piece[]): void {
  out.push(b ? "true" : "false");
}

function string(s: unknown, out: Piece[]): void {
  out.push(JSON.stringify(s));
}
