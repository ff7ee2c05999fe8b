import type { FastifyInstance } from "fastify";
import { I3xError } from "../domain/errors.js";

/**
 * Depth of the deepest array/object nesting in a JSON text, stopping early beyond `limit`. One pass over
 * the characters; strings (and escapes inside them) are skipped.
 */
export function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) {
      inString = true;
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
