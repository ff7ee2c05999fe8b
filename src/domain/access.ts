import { type BulkItem, itemError } from "./errors.js";

export type Scope = "read" | "write";
export const SCOPES: readonly Scope[] = ["read", "write"];

/**
 * What one request may touch, decided before anything is read: every service method that reads or writes
 * elements takes it as its first argument. A key restricted to element-id prefixes sees a model made only
 * of the elements it may access: denied ids are answered with a 403 item without being read, and no
 * listing, relationship, parent or component that a service returns names one of them.
 */
export class Access {
  /** Running open (no keys), or a key without prefixes: every element. */
  static readonly everything = new Access(undefined, SCOPES, undefined);

  /**
   * `owner` is the key the request authenticated with, when any: subscriptions belong to it.
   * `prefixes` undefined means every element; otherwise an id must start with one of them.
   */
  private constructor(
    readonly owner: string | undefined,
    readonly scopes: readonly Scope[],
    readonly prefixes: readonly string[] | undefined,
  ) {}

  static forKey(key: { id: string; scopes: readonly Scope[]; prefixes?: readonly string[] }): Access {
    return new Access(key.id, [...key.scopes], key.prefixes === undefined ? undefined : [...key.prefixes]);
  }

  /** Some elements are denied; when false, `allows` is true for every id. */
  get restricted(): boolean {
    return this.prefixes !== undefined;
  }

  allows(elementId: string): boolean {
    const prefixes = this.prefixes;
    if (prefixes === undefined) return true;
    for (const p of prefixes) if (elementId.startsWith(p)) return true;
    return false;
  }

  hasScope(scope: Scope): boolean {
    return this.scopes.includes(scope);
  }
}

/** The item a bulk answer carries in the place of an id the request's access denies. */
export function forbiddenItem<T>(elementId: string): BulkItem<T> {
  return itemError(elementId, 403, `This API key may not access element ${elementId}`);
}
