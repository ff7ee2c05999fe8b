/**
 * Which history retention removes, decided alike for both stores: `I3XD_HISTORY_RETENTION` for every
 * object, `I3XD_HISTORY_RETENTION_BY_TYPE` for the objects of a named type. Retention removes history
 * only: the current value of an element (a table of its own) and the model are never touched by it.
 */
export interface RetentionPolicy {
  /** History older than this (ms) goes; undefined keeps it forever. */
  defaultMs: number | undefined;
  /** Types with a period of their own, by object type elementId. */
  byType: ReadonlyMap<string, number>;
}

export const KEEP_FOREVER: RetentionPolicy = { defaultMs: undefined, byType: new Map() };

export function retains(policy: RetentionPolicy): boolean {
  return policy.defaultMs !== undefined || policy.byType.size > 0;
}

/** The oldest timestamp (µs) an object of `typeElementId` keeps at `nowMs`; undefined: it keeps all. */
export function cutoffUsFor(policy: RetentionPolicy, typeElementId: string | undefined, nowMs: number) {
  const ms = (typeElementId === undefined ? undefined : policy.byType.get(typeElementId)) ?? policy.defaultMs;
  return ms === undefined ? undefined : (nowMs - ms) * 1000;
}

/**
 * The cutoff every object agrees on (µs): history older than this goes whatever its type, so a store may
 * drop it wholesale (PostgreSQL drops whole daily partitions). Undefined when some object keeps all.
 */
export function commonCutoffUs(policy: RetentionPolicy, nowMs: number): number | undefined {
  if (policy.defaultMs === undefined) return undefined;
  let longest = policy.defaultMs;
  for (const ms of policy.byType.values()) longest = Math.max(longest, ms);
  return (nowMs - longest) * 1000;
}
