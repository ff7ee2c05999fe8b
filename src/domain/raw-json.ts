/**
 * JSON text that a response embeds as it is: already valid JSON (e.g. a history series rendered by the
 * store). A serializer that knows it writes `json` verbatim; any other falls back on `toJSON`, which gives
 * the same output at the cost of a parse.
 */
export class RawJson {
  constructor(readonly json: string) {}

  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}
