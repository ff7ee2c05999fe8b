import { escapeIdPart } from "./element-ids.js";

/**
 * A rule's topic pattern: MQTT levels where `{name}` captures one level, `{name#}` captures the rest of the
 * topic (last level only), and `+` / `#` match without capturing. The broker subscription is the pattern
 * with captures turned into wildcards.
 */
export interface TopicPattern {
  readonly source: string;
  /** The MQTT topic filter to subscribe to. */
  readonly filter: string;
  /** Capture names, in order. */
  readonly names: readonly string[];
  /** The captured levels by name (a `{name#}` capture keeps its levels), or null when the topic does not match. */
  match(topic: string): Map<string, string[]> | null;
}

type Level =
  | { kind: "literal"; text: string }
  | { kind: "one"; name?: string }
  | { kind: "rest"; name?: string };

const CAPTURE = /^\{([A-Za-z_][A-Za-z0-9_]*)(#?)\}$/;
/** Names a template gives meaning to by itself; a capture may not shadow them. */
const BUILT_IN_PLACEHOLDERS = new Set(["topic", "last", "connector"]);

/** Compiles a pattern, or throws an Error saying what is wrong with it. */
export function compileTopicPattern(source: string): TopicPattern {
  if (source.length === 0) throw new Error("must not be empty");
  const parts = source.split("/");
  const levels: Level[] = [];
  const names: string[] = [];
  for (const [i, part] of parts.entries()) {
    const capture = CAPTURE.exec(part);
    const last = i === parts.length - 1;
    if (capture) {
      const [, name, rest] = capture as unknown as [string, string, string];
      if (BUILT_IN_PLACEHOLDERS.has(name))
        throw new Error(`capture {${name}} shadows a built-in placeholder`);
      if (names.includes(name)) throw new Error(`capture {${name}} appears twice`);
      if (rest && !last) throw new Error(`{${name}#} must be the last level`);
      names.push(name);
      levels.push(rest ? { kind: "rest", name } : { kind: "one", name });
    } else if (part === "+") levels.push({ kind: "one" });
    else if (part === "#") {
      if (!last) throw new Error("# must be the last level");
      levels.push({ kind: "rest" });
    } else if (/[+#{}]/.test(part)) throw new Error(`level "${part}" mixes text with a wildcard or capture`);
    else levels.push({ kind: "literal", text: part });
  }
  const filter = levels.map((l) => (l.kind === "literal" ? l.text : l.kind === "one" ? "+" : "#")).join("/");
  const startsWithWildcard = levels[0]?.kind !== "literal";
  return {
    source,
    filter,
    names,
    match(topic: string) {
      // As in MQTT, a filter starting with a wildcard does not match `$SYS`-style topics.
      if (startsWithWildcard && topic.startsWith("$")) return null;
      const got = topic.split("/");
      const out = new Map<string, string[]>();
      for (const [i, level] of levels.entries()) {
        if (level.kind === "rest") {
          // `a/#` matches `a` too (MQTT 3.1.1 §4.7.1.2).
          if (level.name) out.set(level.name, got.slice(i));
          return out;
        }
        const text = got[i];
        if (text === undefined) return null;
        if (level.kind === "literal" && level.text !== text) return null;
        if (level.kind === "one" && level.name) out.set(level.name, [text]);
      }
      return got.length === levels.length ? out : null;
    },
  };
}

/** What a template is filled from for one message. */
export interface TemplateValues {
  connector: string;
  topic: string;
  captures: Map<string, string[]>;
}

export interface Template {
  readonly source: string;
  /** For ids: values escaped per element-ids.ts, levels joined by `/`. */
  id(values: TemplateValues): string;
  /** For display names: values as they are. */
  text(values: TemplateValues): string;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** Compiles a template against the captures a pattern offers, or throws an Error naming the problem. */
export function compileTemplate(source: string, captures: readonly string[]): Template {
  const pieces: ({ literal: string } | { name: string })[] = [];
  let at = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const name = m[1] ?? "";
    if (!BUILT_IN_PLACEHOLDERS.has(name) && !captures.includes(name))
      throw new Error(
        `unknown placeholder {${name}} (known: ${[...captures, ...BUILT_IN_PLACEHOLDERS].map((n) => `{${n}}`).join(", ")})`,
      );
    pieces.push({ literal: source.slice(at, m.index) }, { name });
    at = m.index + m[0].length;
  }
  pieces.push({ literal: source.slice(at) });
  if (pieces.some((p) => "literal" in p && /[{}]/.test(p.literal)))
    throw new Error("has an unmatched { or }");
  const render = (values: TemplateValues, part: (levels: string[]) => string) =>
    pieces
      .map((p) => {
        if ("literal" in p) return p.literal;
        if (p.name === "topic") return part(values.topic.split("/"));
        if (p.name === "connector") return part([values.connector]);
        if (p.name === "last") return part([values.topic.slice(values.topic.lastIndexOf("/") + 1)]);
        return part(values.captures.get(p.name) ?? []);
      })
      .join("");
  return {
    source,
    id: (values) => render(values, (levels) => levels.map(escapeIdPart).join("/")),
    text: (values) => render(values, (levels) => levels.join("/")),
  };
}
