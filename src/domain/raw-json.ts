/**
 * JSON text that a response embeds as it is: already valid JSON (e.g. a history series rendered by the
 * store). A serializer that knows it writes `json` verbatim; any other falls back on `toJSON`, which gives
 * the same output at the cost of a parse.
 */
export class RawJson {
  /** The text, or its UTF-8 bytes. */
  constructor(readonly json: string | Uint8Array) {}

  toJSON(): unknown {
    return JSON.parse(jsonText(this.json));
  }
}

/** JSON text as a string, whichever form it came in. */
export function jsonText(json: string | Uint8Array): string {
  return typeof json === "string"
    ? json
    : Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString();
}
