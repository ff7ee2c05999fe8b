/**
 * The wire format of change notifications between replicas (PostgreSQL `NOTIFY` on one channel). A payload
 * names what changed, never the values: NOTIFY payloads must stay under 8000 bytes, and a receiver reads the
 * values it needs from the database anyway. JSON, so any elementId travels safely.
 *
 * - `{"o":origin,"c":[id, tsUs, id, tsUs, …]}`: these elements got a new current value, the point stored at
 *   that timestamp; chunked over several notifications when long.
 * - `{"o":origin,"m":1}`: the model changed (an import); receivers drop every cached entry.
 * - `{"o":origin,"x":1}`: values changed that could not be listed (an id too long for one payload);
 *   receivers drop their cached values.
 */
export const CHANGES_CHANNEL = "i3xd_changes";

/** Below NOTIFY's 8000-byte limit with room to spare. */
export const PAYLOAD_MAX_BYTES = 7900;

export interface ChangeKey {
  elementId: string;
  tsUs: number;
}

export interface ChangeNotice {
  origin: string;
  changes: ChangeKey[];
  /** The model changed: every cache entry is stale. */
  model: boolean;
  /** Values changed that the notice does not list: every cached value is stale. */
  unlisted: boolean;
}

/** Payloads for a batch of changed current values, in order, each within `PAYLOAD_MAX_BYTES`. */
export function encodeChanges(origin: string, keys: readonly ChangeKey[]): string[] {
  const head = `{"o":${JSON.stringify(origin)},"c":[`;
  const tail = "]}";
  const payloads: string[] = [];
  let parts: string[] = [];
  let bytes = head.length + tail.length;
  let unlisted = false;
  for (const k of keys) {
    const entry = `${JSON.stringify(k.elementId)},${k.tsUs}`;
    const size = Buffer.byteLength(entry) + 1;
    if (head.length + tail.length + size > PAYLOAD_MAX_BYTES) {
      unlisted = true;
      continue;
    }
    if (bytes + size > PAYLOAD_MAX_BYTES) {
      payloads.push(head + parts.join(",") + tail);
      parts = [];
      bytes = head.length + tail.length;
    }
    parts.push(entry);
    bytes += size;
  }
  if (parts.length > 0) payloads.push(head + parts.join(",") + tail);
  if (unlisted) payloads.push(`{"o":${JSON.stringify(origin)},"x":1}`);
  return payloads;
}

export function encodeModelChange(origin: string): string {
  return `{"o":${JSON.stringify(origin)},"m":1}`;
}

/** The notice in a payload, or undefined when it is not one of ours. */
export function decodeNotice(payload: string | undefined): ChangeNotice | undefined {
  if (!payload) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (raw === null || typeof raw !== "object") return undefined;
  const { o, c, m, x } = raw as { o?: unknown; c?: unknown; m?: unknown; x?: unknown };
  if (typeof o !== "string") return undefined;
  const changes: ChangeKey[] = [];
  if (Array.isArray(c)) {
    for (let i = 0; i + 1 < c.length; i += 2) {
      const elementId = c[i];
      const tsUs = c[i + 1];
      if (typeof elementId === "string" && Number.isSafeInteger(tsUs)) changes.push({ elementId, tsUs });
    }
  }
  return { origin: o, changes, model: m === 1, unlisted: x === 1 };
}
