import type { FastifyInstance } from "fastify";
import { I3xError } from "../domain/errors.js";

/**
 * Depth of the deepest array/object nesting in a JSON text, stopping early beyond `limit`. One pass over
 * the characters; strings are jumped over with `indexOf` (most of an ingest body is strings, and a
 * character-by-character walk through them cost twice the time).
 */
export function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      const end = stringEnd(text, i);
      // An unterminated string: nothing after it nests, and the parser refuses the text anyway.
      if (end === -1) return max;
      i = end;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--;
    }
  }
  return max;
}

/** The index of the quote that ends the string opened at `open`: the next one not escaped; -1 if none. */
function stringEnd(text: string, open: number): number {
  let end = text.indexOf('"', open + 1);
  while (end !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === 92 /* \ */) backslashes++;
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
  return -1;
}

/**
 * JSON request bodies nested deeper than `maxDepth` are refused with 400 before they are parsed. Deep
 * nesting has no use in i3X requests, and everything downstream that walks a value recursively (schema
 * validation, serialization for the store, error messages) would otherwise overflow the stack on it.
 * Parsing itself stays Fastify's own (with its `__proto__` and `constructor.prototype` poisoning checks).
 */
export function limitJsonDepth(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    if (nestingDepth(text, maxDepth) > maxDepth) {
      done(new I3xError(400, `JSON nested deeper than ${maxDepth} levels is not accepted`), undefined);
      return;
    }
    parse(request, text, done);
  });
}
