import type { Access } from "../domain/access.js";
import { HAS_COMPONENT } from "../domain/model.js";
import type { Store } from "../store/store.js";
import { unique } from "./model.js";

/**
 * How far below each requested element a read follows `HasComponent` (maxDepth 1 = the element only).
 * `serverLimited` says the cut-off is the server's own limit rather than the client's request: only then
 * does a composition that goes on below it make the answer partial (HTTP 206).
 */
export interface DepthPlan {
  levels: number;
  serverLimited: boolean;
}

export function planDepth(maxDepth: number, maxCompositionDepth: number): DepthPlan {
  if (maxDepth === 0) return { levels: maxCompositionDepth, serverLimited: true };
  const wanted = maxDepth - 1;
  if (wanted > maxCompositionDepth) return { levels: maxCompositionDepth, serverLimited: true };
  return { levels: wanted, serverLimited: false };
}

/** What one walk gathered: the composition tree below the roots and one datum per node. */
export interface CompositionWalk<T> {
  /** `HasComponent` children of every node whose children were looked up. */
  children: Map<string, string[]>;
  data: Map<string, T>;
}

/**
 * Gathers the composition trees of many roots at once, level by level: one edge look-up and one data
 * fetch per level for all roots together, never one per element. Only `HasComponent` is followed
 * (hierarchical children are independent objects and never part of a value). A component `access` denies
 * is not part of the tree: it is neither fetched nor followed.
 */
export async function walkComposition<T>(
  access: Access,
  store: Store,
  roots: readonly { elementId: string; isComposition: boolean }[],
  plan: DepthPlan,
  fetch: (ids: string[]) => Promise<Map<string, T>>,
): Promise<CompositionWalk<T>> {
  const children = new Map<string, string[]>();
  const fetched = new Set<string>();
  const data = new Map<string, T>();

  const load = async (ids: string[]) => {
    const missing = ids.filter((id) => !fetched.has(id));
    if (missing.length === 0) return;
    for (const id of missing) fetched.add(id);
    for (const [id, datum] of await fetch(missing)) data.set(id, datum);
  };
  const expand = async (ids: readonly string[]) => {
    const need = ids.filter((id) => !children.has(id));
    if (need.length === 0) return;
    for (const id of need) children.set(id, []);
    for (const edge of await store.getRelationships(need, HAS_COMPONENT)) {
      if (!access.allows(edge.targetId)) continue;
      const list = children.get(edge.sourceId);
      if (list && !list.includes(edge.targetId)) list.push(edge.targetId);
    }
  };

  await load(unique(roots.map((r) => r.elementId)));
  const wantsChildren = plan.levels > 0 || plan.serverLimited;
  let frontier = wantsChildren ? unique(roots.filter((r) => r.isComposition).map((r) => r.elementId)) : [];
  for (let level = 1; level <= plan.levels && frontier.length > 0; level++) {
    await expand(frontier);
    const next = new Set<string>();
    for (const id of frontier) for (const kid of children.get(id) ?? []) next.add(kid);
    frontier = [...next];
    await load(frontier);
  }
  // Looking one level past a server limit is what tells a complete answer from a truncated one.
  if (plan.serverLimited && frontier.length > 0) await expand(frontier);
  return { children, data };
}

/**
 * Nests component entries below `id`, `remaining` levels deep. Entries are keyed by the child's elementId;
 * a child that is itself a composition carries its own `components` the same way. Reports through
 * `onTruncated` when the plan's server limit cut a composition short.
 */
export function assembleComponents<E extends { components?: Record<string, E> }>(
  walk: CompositionWalk<unknown>,
  id: string,
  remaining: number,
  plan: DepthPlan,
  make: (childId: string) => E,
  onTruncated: (cutAt: string) => void,
): Record<string, E> | undefined {
  const kids = walk.children.get(id);
  if (!kids || kids.length === 0) return undefined;
  if (remaining <= 0) {
    if (plan.serverLimited) onTruncated(id);
    return undefined;
  }
  // A null prototype keeps an elementId such as "__proto__" an ordinary key.
  const out = Object.create(null) as Record<string, E>;
  for (const kid of kids) {
    const entry = make(kid);
    const nested = assembleComponents(walk, kid, remaining - 1, plan, make, onTruncated);
    if (nested) entry.components = nested;
    out[kid] = entry;
  }
  return out;
}
