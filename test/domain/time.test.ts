import { describe, expect, it } from "vitest";
import { formatTimestampUs, parseTimestampUs } from "../../src/domain/time.js";

/** The plain definition that the per-minute fast path of `formatTimestampUs` must always agree with. */
function reference(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString();
  const rest = us - ms * 1000;
  return rest === 0 ? iso : `${iso.slice(0, -1)}${String(rest).padStart(3, "0")}Z`;
}

describe("formatTimestampUs", () => {
  it("matches toISOString-based formatting for any microsecond timestamp", () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const samples: number[] = [0, -1, -1000, 999, 1000, 59_999_999, 60_000_000, -60_000_001];
    // The first and last microsecond of years 0000 and 9999, and beyond them the signed six-digit years.
    samples.push(-62_167_219_200_000 * 1000, 253_402_300_799_999 * 1000, 253_402_300_800_000 * 1000);
    samples.push(-62_167_219_200_001 * 1000);
    for (let i = 0; i < 20_000; i++) samples.push(Math.floor((random() * 2 - 0.5) * 4e15));
    // A run of consecutive points inside one minute and across minute boundaries, as history reads see.
    for (let i = 0; i < 200; i++) samples.push(1_700_000_000_000_000 + i * 1_000_000 + (i % 7) * 1_001);
    for (const us of samples) expect(formatTimestampUs(us)).toBe(reference(us));
  });

  it("round-trips through parseTimestampUs", () => {
    for (const text of [
      "2025-01-08T10:30:00.000Z",
      "2025-01-08T10:30:59.123456Z",
      "1969-12-31T23:59:59.999Z",
    ]) {
      const us = parseTimestampUs(text);
      expect(us).not.toBeNull();
      expect(formatTimestampUs(us as number)).toBe(text.replace(/(\.\d{3})000Z$/, "$1Z"));
    }
  });
});

/** The earlier definition, by round trip through Date: the arithmetic date check must agree with it. */
function referenceParse(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac] = m;
  const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  const check = new Date(ms);
  if (check.getUTCFullYear() !== +y || check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d)
    return null;
  if (+h > 23 || +mi > 59 || +s > 59) return null;
  return ms * 1000 + (frac ? Number(frac.padEnd(6, "0").slice(0, 6)) : 0);
}

describe("parseTimestampUs", () => {
  it("accepts exactly the calendar dates that exist", () => {
    const pad = (n: number, w = 2) => String(n).padStart(w, "0");
    const years = [0, 1, 99, 100, 1900, 1970, 2000, 2023, 2024, 2100, 2400, 9999];
    for (const y of years) {
      for (let mo = 0; mo <= 13; mo++) {
        for (const d of [0, 1, 28, 29, 30, 31, 32]) {
          for (const time of ["00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60"]) {
            const text = `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${time}.5Z`;
            expect(parseTimestampUs(text), text).toBe(referenceParse(text));
          }
        }
      }
    }
  });
});

describe("parseTimestampUs against the regular-expression definition", () => {
  it("agrees on valid timestamps and on every one-character change of them", () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return Math.floor((seed / 2 ** 31) * n);
    };
    const alphabet = "0123456789-:TZ.z tx+\u0660\uff10";
    const texts: string[] = [
      "",
      "Z",
      "2025-01-08T10:30:00Z\n",
      " 2025-01-08T10:30:00Z",
      "2025-01-08T10:30:00.Z",
    ];
    for (let i = 0; i < 3000; i++) {
      const us = (random(2 ** 30) * 2 ** 20 + random(2 ** 20)) % 253_402_300_800_000_000;
      const base = formatTimestampUs(us);
      const fraction = "123456789".slice(0, random(10));
      const valid = random(2) === 0 ? base : `${base.slice(0, 19)}${fraction ? `.${fraction}` : ""}Z`;
      texts.push(valid);
      const at = random(valid.length + 1);
      const mutation = random(3);
      const c = alphabet[random(alphabet.length)];
      if (mutation === 0) texts.push(valid.slice(0, at) + c + valid.slice(at + 1));
      else if (mutation === 1) texts.push(valid.slice(0, at) + c + valid.slice(at));
      else texts.push(valid.slice(0, at) + valid.slice(at + 1));
    }
    for (const text of texts) expect(parseTimestampUs(text), JSON.stringify(text)).toBe(referenceParse(text));
    expect(texts.filter((t) => parseTimestampUs(t) !== null).length).toBeGreaterThan(3000);
  });

  it("keeps microseconds, drops digits below them and rejects what is not a string", () => {
    expect(parseTimestampUs("2025-01-08T10:30:00.1234567Z")).toBe(
      parseTimestampUs("2025-01-08T10:30:00.123456Z"),
    );
    expect(parseTimestampUs("2025-01-08T10:30:00.5Z")).toBe(Date.UTC(2025, 0, 8, 10, 30, 0) * 1000 + 500_000);
    expect(parseTimestampUs("2025-01-08T10:30:00.1234567890Z")).toBeNull();
    expect(parseTimestampUs(1736332200000)).toBeNull();
    expect(parseTimestampUs(null)).toBeNull();
  });
});
