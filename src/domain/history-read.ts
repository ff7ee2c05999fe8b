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

/** Both ends inclusive, microseconds since the epoch; at most `limit` points per element, oldest first. */
export interface HistoryReadRange {
  startUs: number;
  endUs: number;
  limit: number;
}

export type HistoryReadResult =
  | { ok: true; points: Vqt[]; truncated: boolean }
  | { ok: false; detail: string };
