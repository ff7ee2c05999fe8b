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
 * response's cost. test/api/history-body.test.ts holds the output to the schema and to the schema
 * serializer's bytes.
 */
export function serializeHistoryBody(payload: unknown): string {
  const body = payload as Body;
  let out = `{"success":${bool(body.success)},"results":[`;
  const results = body.results;
  for (let i = 0; i < results.length; i++) {
    const item = results[i];
    if (i > 0) out += ",";
    out += `{"success":${bool(item.success)},"elementId":${JSON.stringify(item.elementId)}`;
    if (item.result !== undefined) {
      out += `,"result":{"isComposition":${bool(item.result.isComposition)},${series(item.result)}}`;
    }
    if (item.responseDetail !== undefined) out += `,"responseDetail":${detail(item.responseDetail)}`;
    out += "}";
  }
  out += "]";
  if (body.responseDetail !== undefined) out += `,"responseDetail":${detail(body.responseDetail)}`;
  return `${out}}`;
}

/** `"values":…` and, when present, `"components":{…}` of a result or component entry. */
function series(entry: ComponentHistory): string {
  let out = `"values":${entry.values.json}`;
  const components = entry.components;
  if (components !== undefined) {
    out += ',"components":{';
    let first = true;
    for (const key in components) {
      out += `${first ? "" : ","}${JSON.stringify(key)}:{${series(components[key])}}`;
      first = false;
    }
    out += "}";
  }
  return out;
}

function detail(d: ResponseDetail): string {
  return `{"title":${JSON.stringify(d.title)},"status":${Math.trunc(d.status)},"detail":${JSON.stringify(d.detail)}}`;
}

function bool(b: unknown): string {
  return b ? "true" : "false";
}
