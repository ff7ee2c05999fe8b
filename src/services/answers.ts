import { type Access, forbiddenItem } from "../domain/access.js";
import { type BulkItem, itemOk, type ResponseDetail } from "../domain/errors.js";

/**
 * For each part of an answer the in-process cache gave whole, the cached object that part was made from.
 * The cache freezes what it holds and replaces it, never modifies it, when its content changes (a value
 * when it is written, everything when the model changes), so such an object's identity stands for the
 * content of the part made from it: src/api/rendered.ts keeps the bytes rendered for a part by it
 * (docs/adr/010). `undefined` marks a part that depends on more than its source (a parent the access
 * hides): it is rendered afresh.
 */
export type AnswerSources = readonly (object | undefined)[];

/** Bulk items plus, when a server limit cut something short, the 206 detail for the whole response. */
export interface BulkOutcome<T> {
  items: BulkItem<T>[];
  partial?: ResponseDetail;
  /** Set only when the cache answered the whole read: the source of each item, in the same order. */
  sources?: AnswerSources;
}

/** One item of a read the cache answers: its result and the cached object it was made from. */
export interface CachedPart<T> {
  result: T;
  source: object | undefined;
}

/**
 * A bulk read answered from the cache alone, in request order, or `undefined` as soon as `part` finds an
 * id the cache cannot answer (the caller then takes the full read). A denied id is a 403 item and never
 * read. `countReads` gets the number of distinct ids read, which the cache counts as hits.
 */
export function answerFromCache<T>(
  access: Access,
  ids: readonly string[],
  part: (id: string) => CachedPart<T> | undefined,
  countReads: (distinct: number) => void,
): BulkOutcome<T> | undefined {
  const items: BulkItem<T>[] = [];
  const sources: (object | undefined)[] = [];
  let denied = 0;
  for (const id of ids) {
    if (!access.allows(id)) {
      items.push(forbiddenItem(id));
      sources.push(undefined);
      denied++;
      continue;
    }
    const answered = part(id);
    if (answered === undefined) return undefined;
    items.push(itemOk(id, answered.result));
    sources.push(answered.source);
  }
  const read = denied === 0 ? ids : ids.filter((id) => access.allows(id));
  countReads(read.length < 2 ? read.length : new Set(read).size);
  return { items, sources };
}
