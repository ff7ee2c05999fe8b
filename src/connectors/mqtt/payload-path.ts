/**
 * Where a rule finds the value, timestamp or quality inside a JSON payload: a small, documented subset of
 * JSONPath (docs/connectors.md) that names exactly one place, so no query engine is needed:
 *
 *     $                 the whole payload
 *     value             a member ($. prefix optional: `$.value` is the same)
 *     data.reading.v    nested members
 *     readings[0].v     an array element
 *     ["a.b"]['c d']    members whose names hold dots, spaces or brackets
 */
export interface PayloadPath {
  readonly source: string;
  /** The value at the path, or undefined when the payload has nothing there. */
  get(payload: unknown): unknown;
}

/** Compiles a path, or throws an Error saying where it is malformed. */
export function compilePayloadPath(source: string): PayloadPath {
  const steps: (string | number)[] = [];
  let at = 0;
  if (source.startsWith("$")) {
    at = 1;
    if (source[1] === ".") at = 2;
  }
  let expectName = at > 0 ? source[at - 1] === "." : true;
  while (at < source.length) {
    const c = source[at];
    if (c === "[") {
      const close = parseBracket(source, at, steps);
      at = close + 1;
      expectName = false;
    } else if (c === ".") {
      if (expectName) throw new Error(`empty member name at position ${at}`);
      at++;
      expectName = true;
    } else {
      if (!expectName) throw new Error(`expected "." or "[" at position ${at}`);
      let end = at;
      while (end < source.length && source[end] !== "." && source[end] !== "[") end++;
      steps.push(source.slice(at, end));
      at = end;
      expectName = false;
    }
  }
  if (expectName && steps.length > 0) throw new Error("ends with a dot");
  return {
    source,
    get(payload: unknown): unknown {
      let here: unknown = payload;
      for (const step of steps) {
        if (typeof step === "number") {
          if (!Array.isArray(here) || step >= here.length) return undefined;
          here = here[step];
        } else {
          if (here === null || typeof here !== "object" || Array.isArray(here) || !Object.hasOwn(here, step))
            return undefined;
          here = (here as Record<string, unknown>)[step];
        }
      }
      return here;
    },
  };
}

function parseBracket(source: string, open: number, steps: (string | number)[]): number {
  const quote = source[open + 1];
  if (quote === '"' || quote === "'") {
    const end = source.indexOf(quote, open + 2);
    if (end < 0 || source[end + 1] !== "]")
      throw new Error(`unterminated [${quote}…${quote}] at position ${open}`);
    steps.push(source.slice(open + 2, end));
    return end + 1;
  }
  const close = source.indexOf("]", open);
  const index = source.slice(open + 1, close);
  if (close < 0 || !/^\d{1,9}$/.test(index))
    throw new Error(`expected [<index>] or ["<name>"] at position ${open}`);
  steps.push(Number(index));
  return close;
}
