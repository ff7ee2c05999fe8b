import {
  type ObjectRecord,
  type ObjectType,
  QUALITIES,
  type Relationship,
  type RelationshipType,
} from "../domain/model.js";
import { formatTimestampUs, parseTimestampUs } from "../domain/time.js";
import { POINT_HEAD, POINT_TAIL, type StoredVqtField } from "../domain/vqt-wire.js";
import type { ModelValue } from "../model/format.js";
import type { HistoryJson, PointWrite } from "./store.js";

/** A database row as the drivers return it, keyed by column name. */
export type Row = Record<string, unknown>;

/** A model document's value as a point write; the timestamp is normalised to microsecond precision. */
export function toPointWrite(v: ModelValue): PointWrite {
  const tsUs = parseTimestampUs(v.timestamp);
  if (tsUs === null) throw new Error(`invalid timestamp for ${v.elementId}: ${v.timestamp}`);
  return {
    elementId: v.elementId,
    tsUs,
    vqt: { value: v.value ?? null, quality: v.quality ?? "Good", timestamp: formatTimestampUs(tsUs) },
  };
}

const QUOTED: Record<string, string> = Object.fromEntries(QUALITIES.map((q) => [q, JSON.stringify(q)]));

/**
 * One stored point as the JSON text of its VQT, keys in `VQT_KEYS` order. `valueJson` is the stored value
 * text, which writes produce with `JSON.stringify`, so it is embedded as is; the timestamp needs no escaping.
 */
export function vqtJson(valueJson: string, quality: string, tsUs: number): string {
  const fields: Record<StoredVqtField, string> = {
    value: valueJson,
    quality: QUOTED[quality] ?? JSON.stringify(quality),
  };
  let text = "";
  for (const piece of POINT_HEAD) text += "text" in piece ? piece.text : fields[piece.field];
  return `${text}${formatTimestampUs(tsUs)}${POINT_TAIL}`;
}

/**
 * The SQL expression of a stored point's JSON text up to its timestamp's value, in `vqtJson`'s key order:
 * each store says how its columns become JSON text, the order and the literal text are `POINT_HEAD`'s.
 */
export function pointHeadSql(fields: Record<StoredVqtField, string>): string {
  return POINT_HEAD.map((piece) =>
    "text" in piece ? `'${piece.text.replaceAll("'", "''")}'` : fields[piece.field],
  ).join(" || ");
}

export const NO_POINTS: HistoryJson = { json: "[]", count: 0, truncated: false };

/** Separates the fields of a series as the stores' range statements render it (never raw in JSON text). */
const SERIES_SEPARATOR = "\x01";

/**
 * A series from the string a store's range statement renders in the database: per point its timestamp
 * (integer microseconds) and the point's JSON text up to the timestamp's value, everything separated by
 * `SERIES_SEPARATOR`. `undefined` when the string is not that (points not ascending, a field missing), and
 * the caller reads the rows instead. Points are joined rather than concatenated: a flat string per element,
 * where a `+=` chain would stay a tree of small strings until the response is written, copied by every
 * scavenge on the way.
 */
export function seriesFromText(text: string, limit: number): HistoryJson | undefined {
  const parts = text.split(SERIES_SEPARATOR);
  if (parts.length % 2 !== 0) return undefined;
  const total = parts.length / 2;
  const n = Math.min(total, limit);
  const points: string[] = new Array(n);
  let previous = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const tsText = parts[2 * i];
    const tsUs = Number(tsText);
    // The aggregate's order is the statement's business: checked here rather than assumed.
    if (!(tsUs > previous) || tsText === "") return undefined;
    previous = tsUs;
    points[i] = `${parts[2 * i + 1]}${formatTimestampUs(tsUs)}${POINT_TAIL}`;
  }
  return { json: `[${points.join(",")}]`, count: n, truncated: total > limit };
}

export function byId<T>(rows: Row[], map: (r: Row) => T): Map<string, T> {
  const out = new Map<string, T>();
  for (const r of rows) out.set(r.element_id as string, map(r));
  return out;
}

export function toRelationship(r: Row): Relationship {
  return {
    sourceId: r.source_id as string,
    relationshipType: r.relationship_type as string,
    targetId: r.target_id as string,
  };
}

export function toRelationshipType(r: Row): RelationshipType {
  return {
    elementId: r.element_id as string,
    displayName: r.display_name as string,
    namespaceUri: r.namespace_uri as string,
    relationshipId: r.relationship_id as string,
    reverseOf: r.reverse_of as string,
  };
}

/**
 * The object and object type row mappers of an adapter whose driver returns JSON columns through `json`:
 * SQLite hands them over as text, PostgreSQL (`json`) already parsed. Booleans come as 0/1 from SQLite.
 */
export function modelRowMappers(json: (column: unknown) => unknown): {
  toObjectType: (r: Row) => ObjectType;
  toObject: (r: Row) => ObjectRecord;
} {
  return {
    toObjectType(r) {
      const t: ObjectType = {
        elementId: r.element_id as string,
        displayName: r.display_name as string,
        namespaceUri: r.namespace_uri as string,
        sourceTypeId: r.source_type_id as string,
        schema: json(r.schema) as ObjectType["schema"],
      };
      if (r.version !== null) t.version = r.version as string;
      if (r.related !== null) t.related = json(r.related) as ObjectType["related"];
      return t;
    },
    toObject(r) {
      const o: ObjectRecord = {
        elementId: r.element_id as string,
        displayName: r.display_name as string,
        typeElementId: r.type_element_id as string,
        parentId: (r.parent_id as string | null) ?? null,
        isComposition: r.is_composition === true || r.is_composition === 1,
        isExtended: r.is_extended === true || r.is_extended === 1,
      };
      if (r.description !== null) o.description = r.description as string;
      if (r.system !== null) o.system = json(r.system) as ObjectRecord["system"];
      if (r.schema_extensions !== null)
        o.schemaExtensions = json(r.schema_extensions) as ObjectRecord["schemaExtensions"];
      return o;
    },
  };
}
