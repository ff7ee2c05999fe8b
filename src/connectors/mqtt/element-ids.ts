/**
 * How source names become element ids: readable (a topic `riverside/pumping/pump-101/flow` stays exactly
 * that), reversible and stable across restarts. A value put into an id is kept as it is except for the
 * reserved characters, which are percent-encoded as UTF-8 bytes (`%2F`):
 *
 * - `%` itself, so that every `%XX` in an id is an escape and decoding is unambiguous;
 * - `/`, which separates hierarchy levels (a topic's levels, an object and its parents);
 * - `#`, which separates a composition from its members (`…/pump-101/measurements#flow`);
 * - characters an element id may not carry: controls, line and paragraph separators, and white space at
 *   either end of the value.
 *
 * MQTT topic names never contain `#` or `+` (they are wildcards) and a level never contains `/`, so ids made
 * from topics look like the topics themselves unless a level holds `%` or edge white space.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const RESERVED = /[%/#\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const EDGE_SPACE = /^\s+|\s+$/g;

export function escapeIdPart(text: string): string {
  return text.replace(RESERVED, encode).replace(EDGE_SPACE, (space) => [...space].map(encode).join(""));
}

/** The inverse of `escapeIdPart`. Throws URIError on a malformed escape (an id not made by this scheme). */
export function unescapeIdPart(part: string): string {
  return decodeURIComponent(part);
}

/** The separator between a composition's id and a member's escaped key. */
const MEMBER_SEPARATOR = "#";

export function memberId(parentId: string, key: string): string {
  return `${parentId}${MEMBER_SEPARATOR}${escapeIdPart(key)}`;
}

/** The `/`-separated ancestors of an id, nearest last: `a/b/c` → [`a`, `a/b`]. */
export function ancestorsOf(id: string): string[] {
  const out: string[] = [];
  for (let at = id.indexOf("/"); at > 0; at = id.indexOf("/", at + 1)) out.push(id.slice(0, at));
  return out;
}

function encode(char: string): string {
  return encodeURIComponent(char);
}
