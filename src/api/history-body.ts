import type { ResponseDetail } from "../domain/errors.js";
import type { ComponentHistory } from "../services/values.js";

interface Item {
  success: boolean;
  elementId: string;
  result?: ComponentHistory & { isComposition: boolean };
  responseDetail?: ResponseDetail;
}

interface Body {
  success: boolean;
  results: readonly Item[];
  responseDetail?: ResponseDetail;
}

/**
 * The history response as the route's response schema (`bulk("elementId", historyResult)`) serializes it:
 * the same keys in the same order, nothing else, but each series written from its JSON text as it is.
 * The schema serializer would need every point as an object: for a 36,000-point read that is most of the
 * response's cost. The pieces go straight into one buffer: as one string, a 3 MB body would be copied
 * whole once more to be measured and encoded, and left in the large-object heap for the next full GC.
 * test/api/history-body.test.ts holds the output to the schema and to the schema serializer's bytes.
 */
export function serializeHistoryBody(payload: unknown): Buffer {
  const body = payload as Body;
  const out: Piece[] = [`{"success":${bool(body.success)},"results":[`];
  const results = body.results;
  for (let i = 0; i < results.length; i++) {
    const item = results[i];
    out.push(
      `${i > 0 ? "," : ""}{"success":${bool(item.success)},"elementId":${JSON.stringify(item.elementId)}`,
    );
    if (item.result !== undefined) {
      out.push(`,"result":{"isComposition":${bool(item.result.isComposition)},`);
      series(item.result, out);
      out.push("}");
    }
    if (item.responseDetail !== undefined) out.push(`,"responseDetail":${detail(item.responseDetail)}`);
    out.push("}");
  }
  out.push("]");
  if (body.responseDetail !== undefined) out.push(`,"responseDetail":${detail(body.responseDetail)}`);
  out.push("}");
  let length = 0;
  for (const piece of out) length += typeof piece === "string" ? Buffer.byteLength(piece) : piece.byteLength;
  const buffer = Buffer.allocUnsafe(length);
  let at = 0;
  for (const piece of out) {
    if (typeof piece === "string") at += buffer.write(piece, at);
    else {
      buffer.set(piece, at);
      at += piece.byteLength;
    }
  }
  return buffer;
}

/** Text, or a series already in UTF-8 bytes. */
type Piece = string | Uint8Array;

/** Appends `"values":…` and, when present, `"components":{…}` of a result or component entry. */
function series(entry: ComponentHistory, out: Piece[]): void {
  out.push('"values":', entry.values.json);
  const components = entry.components;
  if (components !== undefined) {
    out.push(',"components":{');
    let first = true;
    for (const key in components) {
      out.push(`${first ? "" : ","}${JSON.stringify(key)}:{`);
      series(components[key], out);
      out.push("}");
      first = false;
    }
    out.push("}");
  }
}

function detail(d: ResponseDetail): string {
  return `{"title":${JSON.stringify(d.title)},"status":${Math.trunc(d.status)},"detail":${JSON.stringify(d.detail)}}`;
}

function bool(b: unknown): string {
  return b ? "true" : "false";
}
