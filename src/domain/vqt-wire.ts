import type { Vqt } from "./model.js";

/**
 * The keys of a VQT on the wire, in the order every response writes them. One list for all who write
 * them: the response schemas (api/schemas.ts), the SQL that renders stored points as JSON text in both
 * stores, and the text built in JS (store/rows.ts). The stores render a point up to its timestamp's value
 * and the timestamp is formatted in JS, so `timestamp` comes last.
 */
export const VQT_KEYS = ["value", "quality", "timestamp"] as const satisfies readonly (keyof Vqt)[];

/** The VQT fields a store renders from its columns; the timestamp is formatted outside the database. */
export type StoredVqtField = Exclude<(typeof VQT_KEYS)[number], "timestamp">;

/** A piece of a point's JSON text: literal text, or a stored field's JSON text. */
export type PointPiece = { text: string } | { field: StoredVqtField };

/**
 * One point's JSON text up to the timestamp's value (its opening quote included): the pieces in key
 * order. Whoever renders a point joins these and appends the formatted timestamp and `"}`.
 */
export const POINT_HEAD: readonly PointPiece[] = VQT_KEYS.flatMap((key, i): PointPiece[] => {
  const text = `${i === 0 ? "{" : ","}${JSON.stringify(key)}:`;
  if (key !== "timestamp") return [{ text }, { field: key }];
  if (i !== VQT_KEYS.length - 1) throw new Error("VQT_KEYS: timestamp must be the last key");
  return [{ text: `${text}"` }];
});

/** Closes a point's JSON text after its timestamp's value. */
export const POINT_TAIL = '"}';
