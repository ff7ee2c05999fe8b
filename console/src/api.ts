/** The public i3X API as the console uses it: envelopes unwrapped, the session's key sent as a bearer token. */

import type { ObjectRecord, Vqt } from "../../src/domain/model.js";

// The wire types are the server's own (src/domain/model.ts holds no server code).
export type { Namespace, ObjectType, Quality, Vqt } from "../../src/domain/model.js";

export interface CurrentValue extends Vqt {
  isComposition: boolean;
  components?: Record<string, Vqt>;
}

/** An object as listed by the API: the record's fields, with `metadata` when asked for. */
export type I3xObject = Omit<ObjectRecord, "description" | "system" | "schemaExtensions"> & {
  metadata?: Record<string, unknown>;
};

export interface RelatedEntry {
  sourceRelationship: string;
  object: I3xObject;
}

export interface BulkItem<T> {
  success: boolean;
  elementId?: string;
  result?: T;
  responseDetail?: { title: string; status: number; detail: string };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// sessionStorage: the key lives as long as the tab, never on disk for later visits.
const KEY_STORAGE = "i3xd.console.apiKey";

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_STORAGE);
  else sessionStorage.setItem(KEY_STORAGE, key);
}

export function authHeaders(): Record<string, string> {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

type AuthFailureListener = (status: 401 | 403, detail: string) => void;
let authFailure: AuthFailureListener = () => {};

/** Called for every 401 or 403 of an API call, so the page can ask for a key or say what is not allowed. */
export function onAuthFailure(listener: AuthFailureListener): void {
  authFailure = listener;
}

async function failureDetail(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { responseDetail?: { detail?: string } };
    return body.responseDetail?.detail ?? `${res.status} ${res.statusText}`;
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

/** A JSON API call; throws `ApiError` on any non-2xx answer (reporting 401/403 to the listener first). */
export async function callApi<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json", ...authHeaders() };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    const detail = await failureDetail(res);
    if (res.status === 401 || res.status === 403) authFailure(res.status, detail);
    throw new ApiError(res.status, detail);
  }
  return (await res.json()) as T;
}

export async function getResult<T>(path: string): Promise<T> {
  return (await callApi<{ result: T }>("GET", path)).result;
}

export async function postBulk<T>(path: string, body: unknown): Promise<BulkItem<T>[]> {
  return (await callApi<{ results: BulkItem<T>[] }>("POST", path, body)).results;
}

/** One element's item of a bulk call, or an error carrying the item's own failure. */
export async function postOne<T>(path: string, body: { elementIds: string[] } & Record<string, unknown>) {
  const [item] = await postBulk<T>(path, body);
  if (item === undefined || !item.success || item.result === undefined) {
    throw new ApiError(item?.responseDetail?.status ?? 500, item?.responseDetail?.detail ?? "No result");
  }
  return item.result;
}

export function relatedOf(elementId: string): Promise<RelatedEntry[]> {
  return postOne<RelatedEntry[]>("/v1/objects/related", { elementIds: [elementId] });
}

export async function currentValues(elementIds: string[], maxDepth = 1): Promise<Map<string, CurrentValue>> {
  const out = new Map<string, CurrentValue>();
  if (elementIds.length === 0) return out;
  const items = await postBulk<CurrentValue>("/v1/objects/value", { elementIds, maxDepth });
  for (const item of items) {
    if (item.success && item.elementId !== undefined && item.result !== undefined)
      out.set(item.elementId, item.result);
  }
  return out;
}
