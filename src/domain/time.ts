/**
 * Timestamps are kept as integer microseconds since the epoch: RFC 3339 allows fractional seconds and a
 * value written with microseconds must read back unchanged; integers also index and compare cheaply.
 */

/**
 * Parses an RFC 3339 UTC timestamp, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (`Z` suffix required, as the guide
 * demands). Returns null when invalid. Read character by character: history ingest parses one timestamp
 * per point, and a regular expression's match array and substrings cost several times this.
 */
export function parseTimestampUs(text: unknown): number | null {
  if (typeof text !== "string") return null;
  const length = text.length;
  // 20 characters without a fraction; a fraction adds the dot and 1 to 9 digits.
  if (length < 20 || length === 21 || length > 30 || text.charCodeAt(length - 1) !== 90 /* Z */) return null;
  if (
    text.charCodeAt(4) !== 45 /* - */ ||
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(10) !== 84 /* T */ ||
    text.charCodeAt(13) !== 58 /* : */ ||
    text.charCodeAt(16) !== 58
  )
    return null;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  const hour = digitsAt(text, 11, 2);
  const minute = digitsAt(text, 14, 2);
  const second = digitsAt(text, 17, 2);
  // Date.UTC silently rolls 2025-02-30 over into March (and reads years 0-99 as 1900-1999): reject dates
  // that do not exist. Checked by arithmetic (a failed digit read is -1 and fails these too).
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return null;
  let micros = 0;
  if (length > 20) {
    if (text.charCodeAt(19) !== 46 /* . */) return null;
    const fractionDigits = length - 21;
    // Digits beyond the sixth are below a microsecond: checked, then dropped.
    const kept = Math.min(fractionDigits, 6);
    micros = digitsAt(text, 20, kept);
    if (micros < 0 || (fractionDigits > 6 && digitsAt(text, 26, fractionDigits - 6) < 0)) return null;
    micros *= 10 ** (6 - kept);
  }
  return Date.UTC(year, month - 1, day, hour, minute, second) * 1000 + micros;
}

/** The decimal number in `count` ASCII digits of `text` from `start`; -1 when one is not a digit. */
function digitsAt(text: string, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
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
