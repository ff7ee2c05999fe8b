/**
 * Timestamps are kept as integer microseconds since the epoch: RFC 3339 allows fractional seconds and a
 * value written with microseconds must read back unchanged; integers also index and compare cheaply.
 */

const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/;

/** Parses an RFC 3339 UTC timestamp (`Z` suffix required, as the guide demands). Returns null when invalid. */
export function parseTimestampUs(text: unknown): number | null {
  if (typeof text !== "string" || text.length > 40) return null;
  const m = RFC3339_UTC.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac] = m;
  const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  if (!Number.isFinite(ms)) return null;
  // Date.UTC silently rolls 2025-02-30 over into March: reject dates that do not round-trip.
  const check = new Date(ms);
  if (check.getUTCFullYear() !== +y || check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d)
    return null;
  if (+h > 23 || +mi > 59 || +s > 59) return null;
  const micros = frac ? Number(frac.padEnd(6, "0").slice(0, 6)) : 0;
  return ms * 1000 + micros;
}

/** Formats microseconds as RFC 3339 UTC: millisecond precision, microseconds only when present. */
export function formatTimestampUs(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString();
  const rest = us - ms * 1000;
  if (rest === 0) return iso;
  return `${iso.slice(0, -1)}${String(rest).padStart(3, "0")}Z`;
}

export function nowUs(): number {
  return Date.now() * 1000;
}
