import type { Vqt } from "./model.js";

/**
 * History read through to a connector's source (`POST /v1/objects/history` for a range older than what
 * i3xd holds; e.g. OPC UA HistoryRead). Types shared by the connector contract and the services' port.
 */

/** One element whose history is asked for; `source` is its `system.source` (the node, topic, metric). */
export interface HistoryReadItem {
  elementId: string;
  source: unknown;
}

/**
 * Both ends inclusive, microseconds since the epoch; at most `limit` points per element, oldest first, and
 * at most `maxBytes` of points (as JSON) for all elements together.
 */
export interface HistoryReadRange {
  startUs: number;
  endUs: number;
  limit: number;
  maxBytes: number;
}

/** `truncated`: the source holds more in the range than `limit` or `maxBytes` let through. */
export type HistoryReadResult =
  | { ok: true; points: Vqt[]; truncated: boolean }
  | { ok: false; detail: string };

/** What a point adds to an answer's JSON: its text and a separating comma. */
export function pointBytes(point: Vqt): number {
  return Buffer.byteLength(JSON.stringify(point)) + 1;
}
