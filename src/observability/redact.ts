/**
 * Keeps secrets out of log lines. Keys are matched by name at any depth of plain objects and arrays
 * (case-insensitive, as a substring, so `Authorization`, `x-api-key`, `refreshToken` and `db_password`
 * all match); URLs have sensitive query parameters masked; free text (exception messages) has
 * `Bearer …` credentials and `key=value` secrets masked.
 *
 * pino's own `redact` option needs a path per depth and costs microseconds per line once wildcards are
 * involved; this walk costs well under a microsecond for the flat objects that request logging writes.
 */

export const REDACTED = "[REDACTED]";

const SENSITIVE_KEY =
  /pass(?:word|wd|phrase)|^pass$|^pwd$|secret|token|api[-_]?key|^auth$|authori[sz]ation|cookie|credential|private[-_]?key|session[-_]?id|signature/i;

/** Keys whose string value is a URL or path whose query string may carry credentials. */
const URL_KEYS = new Set(["path", "url", "href", "location", "referer", "referrer"]);

const MAX_DEPTH = 8;

/**
 * An i3xd API key (`i3xd_<12 hex id>_<secret>`, src/security/keys.ts) wherever it turns up: a key sent in
 * the wrong place (a query parameter of any name, the path, X-Request-ID, User-Agent) must not reach a log
 * line or a span. The id is public and stays, so the line still says whose key leaked.
 */
const KEY_SHAPED = /i3xd_([0-9a-f]{12})_[A-Za-z0-9_-]{4,}/g;
const KEY_PREFIX = "i3xd_";

/** Masks the secret of every key-shaped substring: `i3xd_0123456789ab_[REDACTED]`. */
export function redactKeys(text: string): string {
  if (!text.includes(KEY_PREFIX)) return text;
  return text.replace(KEY_SHAPED, `${KEY_PREFIX}$1_${REDACTED}`);
}

/** True when the text holds something shaped like an API key. */
export function holdsKey(text: string): boolean {
  return redactKeys(text) !== text;
}

/**
 * Returns `obj` itself when nothing needed masking, otherwise a copy with the secrets replaced. The
 * caller's objects (request bodies, headers) are never modified.
 */
export function redactObject<T extends object>(obj: T): T {
  return redactRecord(obj as Record<string, unknown>, 0) as T;
}

function redactRecord(obj: Record<string, unknown>, depth: number): Record<string, unknown> {
  let out = obj;
  for (const key in obj) {
    const value = obj[key];
    let masked: unknown = value;
    if (SENSITIVE_KEY.test(key)) {
      if (value === undefined || value === null || value === "") continue;
      masked = REDACTED;
    } else if (typeof value === "string") {
      if (URL_KEYS.has(key) && value.includes("?")) masked = redactUrl(value);
      else masked = redactKeys(value);
    } else if (value !== null && typeof value === "object" && depth < MAX_DEPTH) {
      masked = redactNested(value, depth + 1);
    }
    if (masked !== value) {
      if (out === obj) out = { ...obj };
      out[key] = masked;
    }
  }
  return out;
}

function redactNested(value: object, depth: number): unknown {
  if (Array.isArray(value)) {
    let out: unknown[] = value;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === null || (typeof item !== "object" && typeof item !== "string")) continue;
      const masked = typeof item === "string" ? redactKeys(item) : redactNested(item, depth + 1);
      if (masked !== item) {
        if (out === value) out = value.slice();
        out[i] = masked;
      }
    }
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  // Only plain records: class instances (errors, buffers, dates) have their own serializers.
  if (proto !== Object.prototype && proto !== null) return value;
  return redactRecord(value as Record<string, unknown>, depth);
}

const QUERY_SECRET = /([?&;])([^=&;#]*)=([^&;#]*)/g;

/** Masks the values of sensitive query parameters: `/x?token=abc&a=1` → `/x?token=[REDACTED]&a=1`. */
export function redactUrl(url: string): string {
  if (!url.includes("?")) return redactKeys(url);
  return redactKeys(
    url.replace(QUERY_SECRET, (whole, sep: string, name: string) =>
      SENSITIVE_KEY.test(safeDecode(name)) ? `${sep}${name}=${REDACTED}` : whole,
    ),
  );
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const TEXT_SECRETS: readonly [RegExp, string][] = [
  [/\b(Bearer|Basic|Digest|ApiKey|Token)\s+[A-Za-z0-9._~+/=-]{4,}/gi, `$1 ${REDACTED}`],
  [
    /(["']?[\w-]*(?:pass(?:word|wd|phrase)|secret|token|api[-_]?key|authori[sz]ation|cookie|credential)[\w-]*["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&}"']+)/gi,
    `$1${REDACTED}`,
  ],
  // Credentials embedded in connection URLs: scheme://user:password@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/\s@]+:)[^@/\s]+@/gi, `$1${REDACTED}@`],
];

/** Masks credentials in free text such as exception messages and stacks. */
export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of TEXT_SECRETS) out = out.replace(pattern, replacement);
  return redactKeys(out);
}
