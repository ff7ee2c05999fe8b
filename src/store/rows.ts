import type { RelationshipType } from "../domain/model.js";
import { formatTimestampUs, parseTimestampUs } from "../domain/time.js";
import type { ModelValue } from "../model/format.js";
import type { PointWrite } from "./store.js";

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

const QUOTED: Record<string, string> = {
  Good: '"Good"',
  GoodNoData: '"GoodNoData"',
  Bad: '"Bad"',
  Uncertain: '"Uncertain"',
};

/**
 * One stored point as the JSON text of its VQT, keys in `Vqt` order. `valueJson` is the stored value text,
 * which writes produce with `JSON.stringify`, so it is embedded as is; the timestamp needs no escaping.
 */
export function vqtJson(valueJson: string, quality: string, tsUs: number): string {
  const q = QUOTED[quality] ?? JSON.stringify(quality);
  return `{"value":${valueJson},"quality":${q},"timestamp":"${formatTimestampUs(tsUs)}"}`;
}

export function byId<T>(rows: Row[], map: (r: Row) => T): Map<string, T> {
  const out = new Map<string, T>();
  for (const r of rows) out.set(r.element_id as string, map(r));
  return out;
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
