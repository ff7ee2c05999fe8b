/** One value a client asked to write to an element a connector owns (`source`: its `system.source`). */
export interface WriteBackItem {
  elementId: string;
  value: unknown;
  source: unknown;
}

export type WriteBackResult = { ok: true } | { ok: false; status: number; detail: string };
