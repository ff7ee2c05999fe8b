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
  const year = +y;
  const month = +mo;
  const day = +d;
  // Date.UTC silently rolls 2025-02-30 over into March (and reads years 0-99 as 1900-1999): reject dates
  // that do not exist. Checked by arithmetic, as ingest parses one timestamp per point.
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (+h > 23 || +mi > 59 || +s > 59) return null;
  const ms = Date.UTC(year, month - 1, day, +h, +mi, +s);
  const micros = frac ? Number(frac.padEnd(6, "0").slice(0, 6)) : 0;
  return ms * 1000 + micros;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1];
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

/** Formats microseconds as RFC 3339 UTC: millisecond precision, microseconds only when present. */
export function formatTimestampUs(us: number): string {
  const ms = Math.floor(us / 1000);
  const minute = Math.floor(ms / 60_000);
  // History reads format tens of thousands of timestamps that share their minute: the date part is
  // formatted once per minute, the seconds by hand (a tenth of the cost of toISOString per point).
  if (minute !== minuteKey) {
    const iso = new Date(minute * 60_000).toISOString();
    // Years outside 0000-9999 have a longer, signed form: leave those to the general path.
    if (iso.length !== 24) return formatSlow(us, ms);
    minuteKey = minute;
    minutePrefix = iso.slice(0, 17);
  }
  const inMinute = ms - minute * 60_000;
  const s = Math.floor(inMinute / 1000);
  const milli = inMinute - s * 1000;
  const rest = us - ms * 1000;
  const text = `${minutePrefix}${s < 10 ? "0" : ""}${s}.${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}`;
  return rest === 0 ? `${text}Z` : `${text}${rest < 10 ? "00" : rest < 100 ? "0" : ""}${rest}Z`;
}

/** The minute last formatted by `formatTimestampUs`, and its `YYYY-MM-DDTHH:MM:` text. */
let minuteKey = Number.NaN;
let minutePrefix = "";

function formatSlow(us: number, ms: number): string {
  const iso = new Date(ms).toISOString();
  const rest = us - ms * 1000;
  if (rest === 0) return iso;
  return `${iso.slice(0, -1)}${String(rest).padStart(3, "0")}Z`;
}

export function nowUs(): number {
  return Date.now() * 1000;
}
